import Imaging
@testable import Pipeline
import XCTest

final class DepthScoreTests: XCTestCase {
    func testMetricsOnKnownErrors() throws {
        var truth = DepthImage(width: 4, height: 2, repeating: 2)
        truth[0, 0] = 0          // no sensor depth: ignored
        truth[1, 0] = 20         // beyond maxDepth: ignored
        var predicted = DepthImage(width: 4, height: 2, repeating: 2.2)
        predicted[2, 0] = .nan   // no prediction: ignored
        predicted[3, 0] = 4      // factor 2: outside δ1 and δ2 (1.5625), inside δ3 (1.953)
        var score = DepthScore(maxDepth: 10)
        score.add(predicted: predicted, truth: truth)
        XCTAssertEqual(score.pixels, 5)
        // Errors: 2.0 once, 0.2 four times.
        XCTAssertEqual(score.rmse!, ((4 + 4 * 0.04) / 5).squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(score.absRel!, (1.0 + 4 * 0.1) / 5, accuracy: 1e-5)
        XCTAssertEqual(score.deltas!, [0.8, 0.8, 0.8], accuracy: 1e-9)
        // A half-resolution prediction is looked up by nearest pixel.
        var half = DepthScore()
        half.add(predicted: DepthImage(width: 2, height: 1, repeating: 2), truth: DepthImage(width: 4, height: 2, repeating: 2))
        XCTAssertEqual(half.rmse!, 0, accuracy: 1e-9)
        XCTAssertEqual(half.pixels, 8)
        XCTAssertNil(DepthScore().rmse)
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
