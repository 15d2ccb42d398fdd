import CAllocator
import XCTest

/// The allocator setting the semfuse tool makes at start-up (`Semfuse.keepFreedMemoryInTheHeap`).
final class AllocatorTests: XCTestCase {
    func testThresholdsAreTakenOnGlibcAndNonsenseIsRefused() {
        #if os(Linux) && canImport(Glibc)
        // An earlier version tested __GLIBC__ before any header defined it and silently did
        // nothing; this catches that.
        XCTAssertEqual(semfuse_keep_freed_memory(256 << 20, 1 << 30), 1)
        #endif
        XCTAssertEqual(semfuse_keep_freed_memory(0, 1 << 30), 0)
        XCTAssertEqual(semfuse_keep_freed_memory(256 << 20, -1), 0)
        XCTAssertEqual(semfuse_keep_freed_memory(1 << 40, 1 << 30), 0)
    }
}
