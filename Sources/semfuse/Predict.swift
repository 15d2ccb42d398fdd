import ArgumentParser
import Foundation
import Imaging
import Logging
import Network
import Pipeline
import Semantics
import Sequences

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the joint network on an image or a sequence: depth, labels and previews per frame.",
        discussion: """
        Pre-processing and post-processing follow the authors' notebooks: ImageNet normalisation at \
        full resolution, outputs at stride 4 upsampled bicubically, depth = |prediction| in metres.

        Per frame, into the output folder:
          <name>.depth.png        16-bit depth, 5000 per metre (TUM scale), 0 = none
          <name>.labels.png       class colours (NYU-40 palette of the notebooks)
          <name>.label-ids.png    class id per pixel (0-39)
          <name>.preview.png      input | labels | depth (0-8 m colour map)
          <name>.normals.png      3-task checkpoints: surface normals as RGB
          <name>.probabilities.npy  with --probabilities: softmax [40, h/4, w/4], float16

        --save-raw <dir> writes the raw outputs at stride 4 as <dir>/segm.npy (float32 \
        1x40xhxw logits) and <dir>/depth.npy (float32 1x1xhxw, before abs); for a sequence, one \
        sub-folder per frame. --record <folder> writes a semfuse sequence holding the frames with \
        the predicted class probabilities, so `semfuse reconstruct <folder> --labels recorded` \
        replays them without the network.
        """)

    @Argument(help: "An image (PNG or JPEG) or a sequence folder.")
    var input: String

    @Option(help: "Network weights (.safetensors in the official key layout; convert .ckpt files with tools/convert_checkpoint.py).")
    var weights: String

    @Option(name: .shortAndLong, help: "Output folder. Default: Output/predict/<input name>")
    var output: String?

    @Option(help: "Also write the raw network outputs (segm.npy, depth.npy) into this folder.")
    var saveRaw: String?

    @Flag(help: "Also write softmax class probabilities per frame (.npy).")
    var probabilities = false

    @Option(help: "Write a semfuse sequence with the predictions as recorded probabilities into this folder.")
    var record: String?

    @Option(help: "Frames of a sequence as start:end (end exclusive).")
    var frames: String?

    @Option(help: "Use every n-th selected frame of a sequence.")
    var every: Int = 1

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard every >= 1 else { throw ValidationError("--every must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        logging.bootstrap()
        let logger = Logger(label: "semfuse.predict")
        let inputURL = URL(fileURLWithPath: input)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inputURL.path, isDirectory: &isDirectory) else {
            throw CLIError("\(input): no such file or folder")
        }
        let weightsURL = URL(fileURLWithPath: weights)
        let loaded = try NetworkWeights.load(weightsURL)
        guard loaded.architecture.classCount >= 40 else {
            throw CLIError("\(weights): the checkpoint predicts \(loaded.architecture.classCount) classes; predict writes NYU-40 labels")
        }
        let network = JointNetwork(weights: loaded, threads: threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount))
        logger.info("weights \(weights): \(loaded.parameterCount) parameters, \(loaded.architecture.classCount) classes\(loaded.architecture.hasNormals ? ", normals" : "")")
        let name = inputURL.deletingPathExtension().lastPathComponent
        let outputURL = URL(fileURLWithPath: output ?? "Output/predict/\(name)")
        do {
            try FileManager.default.createDirectory(at: outputURL, withIntermediateDirectories: true)
        } catch {
            throw CLIError("\(outputURL.path): cannot create output folder: \(error.localizedDescription)")
        }
        var options = PredictionWriter.Options()
        options.probabilities = probabilities
        options.threads = network.threads

        if !isDirectory.boolValue {
            guard record == nil else { throw CLIError("--record needs a sequence folder as input") }
            let image = try ImageFile.readColor(inputURL)
            let start = Date()
            let result: NetworkOutput
            do { result = network.forward(try NetworkInput(image: image)) } catch { throw CLIError("\(input): \(error)") }
            let ms = Date().timeIntervalSince(start) * 1000
            options.rawDirectory = saveRaw.map { URL(fileURLWithPath: $0) }
            let files = try PredictionWriter.write(result, image: image, stem: name, to: outputURL, options: options)
            print("\(input): \(image.width)x\(image.height), network \(String(format: "%.0f", ms)) ms (outputs \(result.width)x\(result.height))")
            printSummary(result, name: name)
            for file in files { print("  wrote \(file.path)") }
            return
        }

        let source = try SequenceLoader.open(inputURL, options: ReaderOptions())
        let positions = try FrameSelection(parsing: frames ?? "0:", every: every).positions(count: source.frameCount)
        guard !positions.isEmpty else { throw CLIError("\(source.name): no frames selected") }
        let recorder = try record.map {
            try SemfuseSequenceWriter(folder: URL(fileURLWithPath: $0), name: "\(source.name)-predicted", intrinsics: source.intrinsics,
                                      classSet: .nyu40)
        }
        print("predict: \(source.name), \(positions.count) frames at \(source.intrinsics.width)x\(source.intrinsics.height) → \(outputURL.path)")
        Interrupt.install()
        var times: [Double] = []
        var written = 0
        var failure: Error?
        for (done, position) in positions.enumerated() {
            if Interrupt.requested { logger.warning("interrupted; \(written) frames written"); break }
            var where_ = "\(source.name) frame \(position)"
            do {
                let frame = try source.frame(at: position)
                if !frame.source.isEmpty { where_ = frame.source }
                let start = Date()
                let result = network.forward(try NetworkInput(image: frame.color))
                times.append(Date().timeIntervalSince(start) * 1000)
                let stem = String(format: "%06d", position)
                options.rawDirectory = saveRaw.map { URL(fileURLWithPath: $0).appendingPathComponent(stem) }
                try PredictionWriter.write(result, image: frame.color, stem: stem, to: outputURL, options: options)
                if let recorder {
                    var recorded = frame
                    recorded.probabilities = NetworkPredictor.nyu40Output(result).classProbabilities()
                    if recorded.depth == nil { recorded.depth = result.depthImage(height: frame.color.height, width: frame.color.width) }
                    try recorder.append(recorded)
                }
                written += 1
            } catch {
                failure = CLIError("\(where_): \(error)")
                break
            }
            if !logging.quiet && ((done + 1) % 10 == 0 || done + 1 == positions.count) {
                FileHandle.standardError.write(Data("  \(done + 1)/\(positions.count) frames, median \(String(format: "%.0f", median(times))) ms per forward pass\n".utf8))
            }
        }
        if let recorder {
            try recorder.finish(notes: ["class probabilities predicted by the joint network (\(weightsURL.lastPathComponent)), output stride 4"],
                                generator: ["tool": "semfuse predict", "weights": weightsURL.lastPathComponent])
            print("Recorded \(written) frames with predicted probabilities into \(record!); replay with: semfuse reconstruct \(record!) --labels recorded")
        }
        print("Wrote \(written) of \(positions.count) frames into \(outputURL.path); network median \(String(format: "%.0f", median(times))) ms per frame")
        if let failure { throw CLIError("stopped after \(written) frames: \(failure)") }
    }

    private func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        return values.sorted()[values.count / 2]
    }

    private func printSummary(_ result: NetworkOutput, name: String) {
        let depth = result.depth.map { abs($0) }.sorted()
        let labels = result.labelsAtOutputResolution()
        var counts = [Int](repeating: 0, count: 256)
        for l in labels.pixels { counts[Int(l)] += 1 }
        let top = counts.enumerated().filter { $0.element > 0 }.sorted { $0.element > $1.element }.prefix(5)
            .map { "\(ClassSet.nyu40.classes.indices.contains($0.offset) ? ClassSet.nyu40.classes[$0.offset].name : "class \($0.offset)") \(100 * $0.element / max(1, labels.count))%" }
        print("  depth: median \(String(format: "%.2f", depth[depth.count / 2])) m, range \(String(format: "%.2f-%.2f", depth.first ?? 0, depth.last ?? 0)) m")
        print("  labels: " + top.joined(separator: ", "))
    }
}
