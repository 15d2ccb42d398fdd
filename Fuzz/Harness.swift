import Foundation
import FuzzTargets

// libFuzzer entry points for every parser (see `FuzzTargets`). Built only by scripts/fuzz.sh
// (SEMFUSE_FUZZ=1 adds this target; `--sanitize=fuzzer` links libFuzzer's `main`, so this file
// has no top-level code). The target is chosen by SEMFUSE_FUZZ_TARGET.

nonisolated(unsafe) private var selected: FuzzTargets.Body?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    let name = ProcessInfo.processInfo.environment["SEMFUSE_FUZZ_TARGET"] ?? ""
    guard let body = FuzzTargets.body(name) else {
        fputs("semfuse-fuzz: set SEMFUSE_FUZZ_TARGET to one of \(FuzzTargets.names.joined(separator: ", "))\n", stderr)
        exit(2)
    }
    selected = body
    return 0
}

/// A typed error is the expected answer to a bad file; an untyped one is a finding, reported as
/// a crash so libFuzzer keeps the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    do {
        try selected!(data)
    } catch where !FuzzTargets.isTyped(error) {
        fatalError("untyped error \(type(of: error)): \(error)")
    } catch {}
    return 0
}
