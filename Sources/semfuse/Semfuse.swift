import ArgumentParser
import CAllocator
import CPUCheck
import Foundation
import Logging

@main
struct Semfuse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "semfuse",
        abstract: "Dense semantic surfel maps from RGB-D sequences (ElasticFusion + SemanticFusion on the CPU).",
        discussion: """
        Typical use:
          semfuse synth Sequences/my-room --frames 300
          semfuse reconstruct Sequences/synthetic-room --labels simulated -o Output/room.ply
          semfuse reconstruct ../shared/data/7scenes-redkitchen-png50 --poses groundtruth -o Output/kitchen.ply
          semfuse bench fusion ../shared/data/7scenes-redkitchen
          semfuse convert ../shared/data/7scenes-redkitchen Output/kitchen.klg
        Sequence layouts are detected automatically: semfuse folders (sequence.json), TUM RGB-D \
        (rgb.txt + depth.txt), 7-Scenes/3DMatch (frame-NNNNNN.color/depth/pose), ICL-NUIM, \
        ElasticFusion .klg logs and ScanNet .sens scans; 'semfuse convert' turns any of them into \
        a semfuse, TUM or 7-Scenes folder or a .klg log.
        """,
        subcommands: [Reconstruct.self, Convert.self, Mesh.self, Predict.self, Synth.self, Evaluate.self, Bench.self])

    /// Checks the CPU before anything else runs: the network kernels are AVX2/FMA code and would
    /// otherwise die of "Illegal instruction" on an older CPU (see `KernelCPU`).
    static func main() {
        if let problem = KernelCPU.problemHere {
            FileHandle.standardError.write(Data("semfuse: error: \(problem)\n".utf8))
            Foundation.exit(EXIT_FAILURE)
        }
        keepFreedMemoryInTheHeap()
        main(nil)
    }

    /// Every frame allocates and frees the same images (depth, pyramids, z-buffers, renders), many
    /// above glibc's mmap threshold, so by default each comes fresh from the kernel and is zeroed
    /// page by page: 6-8 % of a 640x480 tracking run went to page faults. Keeping freed memory in
    /// the heap (no mmap below 256 MB, no trimming below 1 GB) lets the next frame reuse it; peak
    /// memory is what the run needs anyway. Set here, before any thread starts, for the
    /// command-line tool only: the library leaves a host application's allocator alone.
    /// `GLIBC_TUNABLES` set by the user still wins (it is read first, at start-up, and mallopt
    /// is not called when it names these settings).
    static func keepFreedMemoryInTheHeap() {
        let tunables = ProcessInfo.processInfo.environment["GLIBC_TUNABLES"] ?? ""
        guard !tunables.contains("mmap_threshold"), !tunables.contains("trim_threshold") else { return }
        _ = semfuse_keep_freed_memory(256 << 20, 1 << 30)
    }
}

/// Logging options shared by every subcommand.
struct LoggingOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print debug messages (per-frame fusion statistics).")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Print only warnings, errors and the final summary.")
    var quiet = false

    func bootstrap() {
        let level: Logger.Level = verbose ? .debug : (quiet ? .warning : .info)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
