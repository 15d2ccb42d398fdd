import ArgumentParser
import Foundation
import Pipeline
import Sequences

struct ReadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Frame reading speed: decode every selected frame of a sequence, one at a time.",
        discussion: """
        Reads the frames in order on one thread, as reconstruction does, and prints the median and \
        spread of the time per frame and the total, so layouts can be compared on the same frames \
        (e.g. a folder and the .klg made from it by 'semfuse convert'). Each run is repeated \
        --repeats times and the median run reported (the file cache is warm after the first).
        """)

    @Argument(help: "Sequence folder or recording (.klg, .sens).")
    var sequence: String

    @Option(help: "Frames start:end (end exclusive).")
    var frames: String = "0:"

    @Option(help: "Runs over the frames (the median run is reported).")
    var repeats: Int = 3

    func validate() throws {
        guard (1...50).contains(repeats) else { throw ValidationError("--repeats must be 1-50") }
    }

    func run() throws {
        let source = try SequenceLoader.open(URL(fileURLWithPath: sequence), options: ReaderOptions())
        let positions = try FrameSelection(parsing: frames).positions(count: source.frameCount)
        guard !positions.isEmpty else { throw CLIError("no frames selected") }
        var runs: [(total: Double, perFrame: [Double])] = []
        for _ in 0..<repeats {
            var times: [Double] = []
            let start = Date()
            for p in positions {
                let t0 = Date()
                _ = try source.frame(at: p)
                times.append(Date().timeIntervalSince(t0))
            }
            runs.append((Date().timeIntervalSince(start), times.sorted()))
        }
        let median = runs.sorted { $0.total < $1.total }[runs.count / 2]
        let t = median.perFrame
        print(String(format: "bench read: %@ (%@), %d frames at %dx%d: median %.1f ms/frame (p10 %.1f, p90 %.1f), %.2f s in all, %.0f frames/s",
                     source.name, source.layout, positions.count, source.intrinsics.width, source.intrinsics.height,
                     t[t.count / 2] * 1000, t[t.count / 10] * 1000, t[t.count * 9 / 10] * 1000, median.total,
                     Double(positions.count) / median.total))
    }
}
