import Foundation
import XCTest
import Geometry
import Imaging
import Semantics
@testable import Sequences

/// A source that records how it is called: which frames, and whether two calls ever overlapped.
private final class RecordingSource: FrameSource, @unchecked Sendable {
    let failing: Int?
    private let lock = NSLock()
    private var active = 0
    private(set) var maxActive = 0
    private(set) var reads: [Int] = []
    init(failing: Int? = nil) { self.failing = failing }
    var name: String { "recording" }
    var layout: String { "test" }
    var intrinsics: Intrinsics { Intrinsics(fx: 10, fy: 10, cx: 2, cy: 1.5, width: 4, height: 3) }
    var frameCount: Int { 12 }
    var capabilities: SequenceCapabilities { SequenceCapabilities(hasDepth: true, hasPoses: false) }
    var classSet: ClassSet? { nil }
    func frame(at index: Int) throws -> Frame {
        lock.lock(); active += 1; maxActive = max(maxActive, active); reads.append(index); lock.unlock()
        defer { lock.lock(); active -= 1; lock.unlock() }
        Thread.sleep(forTimeInterval: 0.002)  // long enough for calls to overlap if they could
        if index == failing { throw SequenceError.malformed(path: "test", line: nil, reason: "frame \(index) is broken") }
        return Frame(index: index, timestamp: Double(index), color: ColorImage(width: 4, height: 3, repeating: RGB8(UInt8(index), 0, 0)))
    }
}

final class PrefetchingFrameSourceTests: XCTestCase {
    func testSequentialReadsComeFromTheReadAhead() throws {
        let inner = RecordingSource()
        let source = PrefetchingFrameSource(inner)
        for k in 0..<12 {
            let frame = try source.frame(at: k)
            XCTAssertEqual(frame.index, k)
            XCTAssertEqual(frame.color.pixels[0].r, UInt8(k))
        }
        XCTAssertEqual(source.prefetchHits, 11, "every frame after the first was read ahead")
        XCTAssertEqual(inner.reads.count, 12, "no frame read twice, none read beyond the end")
        XCTAssertEqual(inner.maxActive, 1, "the wrapped source is never called from two threads at once")
    }

    func testStrideFollowsTheRequests() throws {
        let inner = RecordingSource()
        let source = PrefetchingFrameSource(inner)
        for k in stride(from: 0, to: 12, by: 3) { XCTAssertEqual(try source.frame(at: k).index, k) }
        // 0 (miss), 3 (miss: the guess was 1), then 6 and 9 predicted from the stride of 3.
        XCTAssertEqual(source.prefetchHits, 2)
        XCTAssertEqual(try source.frame(at: 1).index, 1, "an unpredicted jump back is read as usual")
        XCTAssertEqual(inner.maxActive, 1)
    }

    func testAnErrorArrivesWithItsFrame() throws {
        let source = PrefetchingFrameSource(RecordingSource(failing: 4))
        for k in 0..<4 { XCTAssertNoThrow(try source.frame(at: k)) }
        XCTAssertThrowsError(try source.frame(at: 4)) { error in
            XCTAssertTrue("\(error)".contains("frame 4 is broken"), "\(error)")
        }
        XCTAssertEqual(try source.frame(at: 5).index, 5)
        XCTAssertEqual(source.frameCount, 12)
        XCTAssertEqual(source.layout, "test")
    }
}
