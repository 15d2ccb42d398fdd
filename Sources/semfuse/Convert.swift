import ArgumentParser
import Foundation
import Imaging
import Logging
import Pipeline
import Sequences

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a sequence between layouts (folders, .klg logs, ScanNet .sens).",
        discussion: """
        Reads any sequence semfuse reads (semfuse, TUM RGB-D, 7-Scenes, ICL-NUIM folders, \
        ElasticFusion .klg logs, ScanNet .sens scans) and writes it as a semfuse folder, a TUM \
        folder, a 7-Scenes folder or a .klg log (an output ending in .klg). Depth is copied \
        without the near/far cut reconstruction applies. Recorded labels and class probabilities \
        are kept when the target can hold them (semfuse folders); otherwise the command says what \
        it dropped. Poses are kept by every layout (a .klg gets a <name>.groundtruth.txt sidecar, \
        and <name>.intrinsics.txt with the calibration).

        If a frame cannot be read (a truncated log), the frames before it are written as a \
        complete sequence and the command exits non-zero.
        """)

    @Argument(help: "Input sequence folder or recording (.klg, .sens).")
    var input: String

    @Argument(help: "Output folder, or a .klg file.")
    var output: String

    @Option(help: "Output layout: semfuse, tum, 7scenes or klg. Default: klg for an output ending in .klg, else semfuse.")
    var format: String?

    @Option(help: "Frames to use as start:end (end exclusive), e.g. 0:300, 100:, :50.")
    var frames: String?

    @Option(help: "Use every n-th selected frame.")
    var every: Int = 1

    @Option(help: "Intrinsics override of the input: 'fx,fy,cx,cy[,width,height]' or a file.")
    var intrinsics: String?

    @Option(help: "Depth units per metre of the input, overriding its layout's default; 1-100000.")
    var depthScale: Double?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard every >= 1 else { throw ValidationError("--every must be at least 1") }
        if let format, SequenceFormat(rawValue: format) == nil {
            throw ValidationError("--format must be one of \(SequenceFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try limit(depthScale.flatMap { InputLimits.depthScale($0) })
    }

    func run() throws {
        logging.bootstrap()
        let logger = Logger(label: "semfuse")
        let inputURL = URL(fileURLWithPath: input), outputURL = URL(fileURLWithPath: output)
        let target = format.flatMap(SequenceFormat.init(rawValue:)) ?? SequenceFormat.implied(by: outputURL) ?? .semfuse
        if target == .klg && outputURL.pathExtension.lowercased() != "klg" {
            throw ValidationError("--format klg writes a log file: give an output ending in .klg")
        }
        if target != .klg && outputURL.pathExtension.lowercased() == "klg" {
            throw ValidationError("\(output) ends in .klg but --format is \(target.rawValue) (a folder)")
        }
        var options = SequenceConversion.readerOptions()
        options.intrinsics = try intrinsics.map(IntrinsicsArgument.parse)
        options.depthScale = depthScale
        let selection = try FrameSelection(parsing: frames ?? "0:", every: every)
        let source = try SequenceLoader.open(inputURL, options: options)
        logger.info("opened \(source.name) as \(source.layout): \(source.frameCount) frames, \(source.intrinsics)")
        for assumption in source.assumptions { logger.notice("\(assumption)") }
        for warning in source.warnings { logger.warning("\(warning)") }
        do {
            try FileData.checkNotInput(("output", outputURL), input: inputURL, inputRole: "input sequence")
            if target == .klg { try FileData.checkOutputFile(outputURL) } else { try Self.checkEmptyFolder(outputURL) }
        } catch let error as ImagingError {
            throw CLIError(error.description)
        }
        let positions = selection.positions(count: source.frameCount)
        guard !positions.isEmpty else {
            throw CLIError("\(source.name): no frames selected (\(source.frameCount) in the sequence, selection \(selection))")
        }
        let registered = source.capabilities.colorRegisteredToDepth
        if let implied = SequenceWriters.layoutImpliesRegisteredColor(target), implied != registered {
            logger.warning("\(source.name)'s colour is \(registered ? "" : "not ")registered to its depth, but a \(target.rawValue) sequence is read as if it were\(implied ? "" : " not"): reconstruct the result with --photometric-weight \(registered ? "1" : "0") to track as the original would")
        }
        let writer = try SequenceWriters.make(target, output: outputURL, name: source.name, intrinsics: source.intrinsics,
                                              classSet: source.classSet, depthScale: SequenceConversion.depthScale(of: source),
                                              colorRegisteredToDepth: registered, depthRendered: source.capabilities.depthIsRendered)
        Interrupt.install()
        let start = Date()
        let quiet = logging.quiet
        let result = try SequenceConversion.run(source: source, positions: positions, format: target, writer: writer,
                                                shouldStop: { Interrupt.requested }) { done, total in
            if !quiet && (done % 50 == 0 || done == total) {
                FileHandle.standardError.write(Data("converted \(done)/\(total) frames\n".utf8))
            }
        }
        for line in result.dropped { logger.warning("dropped \(line)") }
        let seconds = Date().timeIntervalSince(start)
        if result.written > 0 {
            print(String(format: "Wrote %d of %d selected frames of %@ (%@) to %@ as %@ in %.1f s",
                         result.written, result.selected, source.name, source.layout, outputURL.path, target.rawValue, seconds))
        }
        if let failure = result.failure {
            logger.error("\(failure)")
            throw CLIError(result.written > 0
                ? "stopped after \(result.written) of \(result.selected) frames; the frames before the error were written as a complete sequence"
                : "no frame could be read; nothing was written")
        }
        if let position = result.interruptedAt {
            logger.warning("interrupted before frame \(position); the \(result.written) frames before it were written as a complete sequence")
            throw ExitCode(130)
        }
    }

    /// A folder output must be new or empty: converting into an existing sequence would mix
    /// its frames with the new ones.
    static func checkEmptyFolder(_ url: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else {
            throw ImagingError.writeFailed(path: url.path, reason: "exists and is not a folder (a folder layout was asked for)")
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        if !contents.isEmpty {
            throw ImagingError.writeFailed(path: url.path, reason: "is a folder that is not empty; convert into a new or empty folder")
        }
    }
}
