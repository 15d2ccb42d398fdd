import Foundation
import XCTest
import TestSupport
import Imaging
@testable import Semantics

final class ClassSetTests: XCTestCase {
    private func csvRows(_ url: URL) throws -> [[String]] {
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(whereSeparator: \.isNewline).dropFirst().map { $0.split(separator: ",").map(String.init) }
    }

    func testNYU40TableMatchesTheDatasetCSV() throws {
        let rows = try csvRows(try SharedData.require("nyuv2/nyu40.csv"))
        XCTAssertEqual(rows.count, 40)
        for row in rows {
            let id = Int(row[0])!
            let c = ClassSet.nyu40.classes[id]
            XCTAssertEqual(c.name, row[1])
            XCTAssertEqual(c.color, RGB8(UInt8(row[2])!, UInt8(row[3])!, UInt8(row[4])!))
            XCTAssertEqual(ClassSet.nyu40ToNyu13[id], Int(row[5])!, "mapping of \(row[1])")
        }
    }

    func testNYU13TableMatchesTheDatasetCSV() throws {
        let rows = try csvRows(try SharedData.require("nyuv2/nyu13.csv"))
        XCTAssertEqual(rows.count, 14)
        for row in rows {
            let c = ClassSet.nyu13.classes[Int(row[0])!]
            XCTAssertEqual(c.name, row[1])
            XCTAssertEqual(c.color, RGB8(UInt8(row[2])!, UInt8(row[3])!, UInt8(row[4])!))
        }
        XCTAssertEqual(ClassSet.nyu13.unlabelledId, 0)
    }

    func testLabelsBecomeProbabilitiesWithTheStatedConfidence() throws {
        var labels = LabelImage(width: 3, height: 2, repeating: 1)
        labels[2, 1] = ClassSet.ignoreLabel
        let map = try ClassProbabilityMap(labels: labels, classCount: 4, confidence: 0.7, source: "t")
        XCTAssertEqual(Array(map.values[0..<4]), [0.1, 0.7, 0.1, 0.1].map { Float($0) })
        XCTAssertEqual(Array(map.values[20..<24]), [0, 0, 0, 0], "ignored pixels carry no evidence")
        XCTAssertEqual(map.argmax().pixels, [1, 1, 1, 1, 1, 255])
    }

    /// The sixteen-lane check finds a bad value anywhere: in a full block, in the tail after the
    /// last block, and each kind (NaN, negative, ±infinity); a map of good values (zeros included)
    /// passes, and the message names the first bad value's pixel and class.
    func testValidationFindsEveryBadValueWherever() {
        let width = 5, height = 3, classes = 7   // 105 values: six blocks of 16 and a tail of 9
        let good = (0..<(width * height * classes)).map { Float($0 % 5) / 4 }
        XCTAssertNil(ClassProbabilityMap(width: width, height: height, classCount: classes, values: good).validationProblem())
        for bad: Float in [.nan, -0.25, .infinity, -.infinity] {
            for index in [0, 15, 16, 50, 95, 96, 104] {
                var values = good
                values[index] = bad
                let problem = ClassProbabilityMap(width: width, height: height, classCount: classes, values: values).validationProblem()
                let pixel = index / classes
                XCTAssertEqual(problem, "value \(bad) at pixel (\(pixel % width), \(pixel / width)) class \(index % classes)")
                XCTAssertFalse(ClassProbabilityMap.allFiniteAndNonNegative(values))
            }
        }
        XCTAssertTrue(ClassProbabilityMap.allFiniteAndNonNegative([]))
        XCTAssertTrue(ClassProbabilityMap.allFiniteAndNonNegative([0, -0.0, .greatestFiniteMagnitude]))
    }

    func testUnknownClassIdIsAnError() throws {
        var labels = LabelImage(width: 3, height: 2, repeating: 1)
        labels[1, 1] = 40
        XCTAssertThrowsError(try ClassProbabilityMap(labels: labels, classCount: 40, confidence: 0.7, source: "labels/000007.png")) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("labels/000007.png") && message.contains("40") && message.contains("(1, 1)"), message)
        }
        XCTAssertThrowsError(try ClassProbabilityMap(labels: labels, classCount: 40, confidence: 1.0, source: "x"))
    }

    func testPalettes() {
        let labels = LabelImage(width: 2, height: 1, pixels: [0, 255])
        XCTAssertEqual(ClassSet.nyu40.colorize(labels).pixels, [RGB8(128, 0, 0), .black])
        XCTAssertNotEqual(ColorRamp.color(0), ColorRamp.color(1))
        XCTAssertEqual(ColorRamp.colorize(depth: DepthImage(width: 1, height: 1, pixels: [0]), near: 0, far: 1).pixels, [.black])
    }

    func testNYU40ToNYU13MappingSumsProbabilities() throws {
        let mapping = try XCTUnwrap(ClassMapping(from: .nyu40, to: .nyu13))
        var v = [Float](repeating: 0, count: 2 * 40)
        v[0] = 0.3; v[7] = 0.3; v[1] = 0.4          // wall + door → NYU-13 wall, floor
        v[40 + 2] = 0.5; v[40 + 9] = 0.5             // cabinet + bookshelf → furniture
        let mapped = mapping.map(ClassProbabilityMap(width: 2, height: 1, classCount: 40, values: v))
        XCTAssertEqual(mapped.classCount, 14)
        XCTAssertEqual(mapped.values[12], 0.6, accuracy: 1e-6)
        XCTAssertEqual(mapped.values[5], 0.4, accuracy: 1e-6)
        XCTAssertEqual(mapped.values[14 + 6], 1, accuracy: 1e-6)
        XCTAssertEqual(mapping.map(LabelImage(width: 3, height: 1, pixels: [0, 22, 255])).pixels, [12, 2, 255])
        XCTAssertNil(ClassMapping(from: .nyu13, to: .nyu40), "no mapping to a finer class set")
    }
}
