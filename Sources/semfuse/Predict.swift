import ArgumentParser
import Foundation
import Geometry
import Imaging
import Logging
import Network
import Pipeline
import Semantics
import Sequences

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a network on an image or a sequence: labels, depth and previews per frame.",
        discussion: """
        --weights takes a file or a bundled model's short name: 'deeplab' (DeepLab-v3 \
        MobileNet-v2 segmenter, ADE20K 31 classes + other), 'fastdepth' (FastDepth, NYU Depth v2, \
        metres), or the joint network's weights (NYU-40 labels and depth, tools/convert_checkpoint.py). \
        Other TFLite models convert with tools/convert_tflite.py. --depth-network pairs a depth \
        model with a segmenter. Models run at the image's own size unless --depth-input says \
        otherwise (converted models are fully convolutional).

        Per frame, into the output folder:
          <name>.labels.png       class colours (the model's class set palette)
          <name>.label-ids.png    class id per pixel
          <name>.depth.png        16-bit depth, 5000 per metre (TUM scale), 0 = none
          <name>.preview.png      input | labels | depth (0-8 m colour map)
          <name>.normals.png      3-task joint checkpoints: surface normals as RGB
          <name>.probabilities.npy  with --probabilities: softmax [C, h, w], float16

        --save-raw <dir> writes the raw outputs at the network's output resolution as \
        <dir>/segm.npy (float32 1xCxhxw logits, as the network outputs them) and <dir>/depth.npy \
        (float32 1x1xhxw, metres; the joint network's before abs); for a sequence, one sub-folder \
        per frame. --record <folder> writes a semfuse sequence holding the frames with the \
        predicted class probabilities, so `semfuse reconstruct <folder> --labels recorded` \
        replays them without the network.
        """)

    @Argument(help: "An image (PNG or JPEG) or a sequence folder.")
    var input: String

    @Option(help: "Model: a file (.safetensors: joint network or converted mobile model) or a bundled name ('deeplab', 'fastdepth').")
    var weights: String

    @Option(help: "A depth model (file or 'fastdepth') to run alongside a segmenter.")
    var depthNetwork: String?

    @Option(help: "Depth model input: 'native' (its own size, e.g. 224x224), 'image' (the image's size, the default) or WIDTHxHEIGHT.")
    var depthInput: String?

    @Option(help: "Central fraction of the image fed to the depth model (1 = whole image).")
    var depthCrop: Double?

    @Option(help: "The depth model's training focal length (pixels at its native size), or 'none'. Used with the camera's focal length (the sequence's intrinsics, or --intrinsics) to correct the metric scale.")
    var depthFocal: String?

    @Option(help: "Camera of a single image, 'fx,fy,cx,cy', for the depth model's focal-length correction.")
    var intrinsics: String?

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

    @Option(help: precisionHelp)
    var precision: NetworkPrecision = .float32

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard every >= 1 else { throw ValidationError("--every must be at least 1") }
        try limit(threads.flatMap { InputLimits.check($0, "--threads", in: InputLimits.threads) })
        if let depthCrop, !(depthCrop > 0.1 && depthCrop <= 1) { throw ValidationError("--depth-crop must be in (0.1, 1]") }
        _ = try depthOptions()
    }

    /// Depth input options; unless --depth-input says otherwise, the image's own size.
    func depthOptions() throws -> DepthInput {
        try DepthInputArgument.parse(size: depthInput, crop: depthCrop, focal: depthFocal, defaultSize: .image)
    }

    /// Runs the models on one image; merges the segmenter's logits with the depth model's depth.
    func predict(_ models: [DenseModel], image: ColorImage, intrinsics: Intrinsics?) throws -> DensePrediction {
        var merged = DensePrediction()
        for model in models {
            let p = try model.predict(image, intrinsics: intrinsics)
            if merged.logits == nil { merged.logits = p.logits; merged.normals = p.normals }
            if merged.depth == nil, p.depth != nil { merged.depth = p.depth; merged.depthCrop = p.depthCrop }
        }
        return merged
    }

    func run() throws {
        logging.bootstrap()
        let logger = Logger(label: "semfuse.predict")
        let inputURL = URL(fileURLWithPath: input)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inputURL.path, isDirectory: &isDirectory) else {
            throw CLIError("\(input): no such file or folder")
        }
        // Output folders are checked before the models load: a bad path fails at once.
        let name = inputURL.deletingPathExtension().lastPathComponent
        let outputURL = URL(fileURLWithPath: output ?? "Output/predict/\(name)")
        do {
            try FileData.prepareFolder(outputURL)
            if let saveRaw { try FileData.prepareFolder(URL(fileURLWithPath: saveRaw)) }
            if let record {
                guard isDirectory.boolValue else { throw CLIError("--record needs a sequence folder as input") }
                if FileData.sameFile(URL(fileURLWithPath: record), inputURL) {
                    throw ImagingError.writeFailed(path: record, reason: "--record would overwrite the input sequence it reads; give another folder")
                }
                try FileData.prepareFolder(URL(fileURLWithPath: record))
            }
        } catch let error as ImagingError { throw CLIError(error.description) }
        let threadCount = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        let depthSettings = try depthOptions()
        var models: [DenseModel] = []
        do {
            models.append(try ModelLibrary.load(weights, threads: threadCount, depthInput: depthSettings, precision: precision))
            if let depthNetwork {
                models.append(try ModelLibrary.load(depthNetwork, threads: threadCount, depthInput: depthSettings, precision: precision))
            }
        } catch { throw CLIError("\(error)") }
        let classSet = models.lazy.compactMap(\.classSet).first
        logger.info("models: \(models.map { "\($0.name) (\($0.classSet.map { "\($0.name) labels" } ?? "")\($0.classSet != nil && $0.predictsDepth ? ", " : "")\($0.predictsDepth ? "depth" : ""))" }.joined(separator: ", "))")
        var options = PredictionWriter.Options()
        options.probabilities = probabilities
        options.threads = threadCount

        if !isDirectory.boolValue {
            guard record == nil else { throw CLIError("--record needs a sequence folder as input") }
            let image = try ImageFile.readColor(inputURL)
            let camera = try intrinsics.map { text -> Intrinsics in
                let v = try IntrinsicsArgument.parse(text)
                return Intrinsics(fx: v.fx, fy: v.fy, cx: v.cx, cy: v.cy, width: image.width, height: image.height)
            }
            let start = Date()
            let result: DensePrediction
            do { result = try predict(models, image: image, intrinsics: camera) } catch { throw CLIError("\(input): \(error)") }
            let ms = Date().timeIntervalSince(start) * 1000
            options.rawDirectory = saveRaw.map { URL(fileURLWithPath: $0) }
            let files = try PredictionWriter.write(result, classSet: classSet, image: image, stem: name, to: outputURL, options: options)
            let sizes = [result.logits.map { "logits \($0.channels)x\($0.height)x\($0.width)" }, result.depth.map { "depth \($0.width)x\($0.height)" }].compactMap { $0 }
            print("\(input): \(image.width)x\(image.height), network \(String(format: "%.0f", ms)) ms (\(sizes.joined(separator: ", ")))")
            printSummary(result, classSet: classSet, image: image)
            for file in files { print("  wrote \(file.path)") }
            return
        }

        let source = try SequenceLoader.open(inputURL, options: ReaderOptions())
        for line in source.assumptions { logger.notice("\(line)") }
        for line in source.warnings { logger.warning("\(line)") }
        let positions = try FrameSelection(parsing: frames ?? "0:", every: every).positions(count: source.frameCount)
        guard !positions.isEmpty else { throw CLIError("\(source.name): no frames selected") }
        if record != nil && classSet == nil { throw CLIError("--record stores class probabilities: give a segmenter with --weights") }
        let recorder = try record.map {
            try SemfuseSequenceWriter(folder: URL(fileURLWithPath: $0), name: "\(source.name)-predicted", intrinsics: source.intrinsics,
                                      classSet: classSet ?? .nyu40, colorRegisteredToDepth: source.capabilities.colorRegisteredToDepth,
                                      depthRendered: source.capabilities.depthIsRendered)
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
                let result = try predict(models, image: frame.color, intrinsics: source.intrinsics)
                times.append(Date().timeIntervalSince(start) * 1000)
                let stem = String(format: "%06d", position)
                options.rawDirectory = saveRaw.map { URL(fileURLWithPath: $0).appendingPathComponent(stem) }
                try PredictionWriter.write(result, classSet: classSet, image: frame.color, stem: stem, to: outputURL, options: options)
                if let recorder {
                    var recorded = frame
                    recorded.probabilities = result.classProbabilities()
                    if recorded.depth == nil {
                        recorded.depth = result.depthImage(width: frame.color.width, height: frame.color.height)
                    }
                    try recorder.append(recorded)
                }
                written += 1
            } catch {
                failure = CLIError("\(where_): \(error)")
                break
            }
            if !logging.quiet && ((done + 1) % 10 == 0 || done + 1 == positions.count) {
                FileHandle.standardError.write(Data("  \(done + 1)/\(positions.count) frames, median \(String(format: "%.0f", median(times))) ms per frame\n".utf8))
            }
        }
        if let recorder {
            let names = models.map(\.name).joined(separator: " + ")
            try recorder.finish(notes: ["class probabilities predicted by \(names) at the model's output resolution"],
                                generator: ["tool": "semfuse predict", "weights": names])
            print("Recorded \(written) frames with predicted probabilities into \(record!); replay with: semfuse reconstruct \(record!) --labels recorded")
        }
        print("Wrote \(written) of \(positions.count) frames into \(outputURL.path); network median \(String(format: "%.0f", median(times))) ms per frame")
        if let failure { throw CLIError("stopped after \(written) frames: \(failure)") }
    }

    private func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        return values.sorted()[values.count / 2]
    }

    private func printSummary(_ result: DensePrediction, classSet: ClassSet?, image: ColorImage) {
        if let depth = result.depthImage(width: image.width, height: image.height)?.pixels.filter({ $0 > 0 }).sorted(), !depth.isEmpty {
            print("  depth: median \(String(format: "%.2f", depth[depth.count / 2])) m, range \(String(format: "%.2f-%.2f", depth.first ?? 0, depth.last ?? 0)) m")
        }
        if let logits = result.logits, let classSet {
            let labels = logits.labelsAtOutputResolution()
            var counts = [Int](repeating: 0, count: 256)
            for l in labels.pixels { counts[Int(l)] += 1 }
            let top = counts.enumerated().filter { $0.element > 0 }.sorted { $0.element > $1.element }.prefix(5)
                .map { "\(classSet.classes.indices.contains($0.offset) ? classSet.classes[$0.offset].name : "class \($0.offset)") \(100 * $0.element / max(1, labels.count))%" }
            print("  labels (\(classSet.name)): " + top.joined(separator: ", "))
        }
    }
}
