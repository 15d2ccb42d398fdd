import ArgumentParser
import Foundation
import Imaging
import Semantics
import Sequences

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a synthetic indoor room sequence with ground truth.",
        discussion: """
        Renders a procedural living room (floor, walls, ceiling, table, chairs, sofa, bookshelf with \
        books, cabinet, television, pictures, door, window, lamp ...) with NYU-40 classes along a \
        smooth handheld-like trajectory, and writes RGB, Kinect-like noisy depth, ground-truth \
        labels and poses in the semfuse sequence format. A preview PNG of frame 0 (RGB | labels | \
        depth) is written beside it.
        """)

    @Argument(help: "Output folder (created).")
    var folder: String

    @Option(help: "Number of frames.")
    var frames: Int = 240

    @Option(help: "Image width.")
    var width: Int = 320

    @Option(help: "Image height.")
    var height: Int = 240

    @Option(help: "Random seed (textures are fixed; sensor noise and the simulated segmenter depend on it).")
    var seed: UInt64 = 1

    @Option(help: "Frames per loop around the room (30 frames/s; 900 = a 30 s loop).")
    var framesPerLoop: Int = 900

    @Flag(help: "Also store the simulated segmenter's class probabilities (float16 .npy, output stride 4).")
    var recordProbabilities = false

    @Option(help: "Store colour as JPEG of this quality (1-100) instead of lossless PNG.")
    var jpegQuality: Int?

    @Flag(help: "Noise-free depth.")
    var noNoise = false

    @Option(help: "Colour rays per pixel along each axis, averaged like a camera pixel integrating light (1: the pixel centre only, which aliases textures and edges; 2 takes about 6x the time of 1).")
    var colorSamples: Int = SyntheticSequence.Options().colorSamples

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard frames >= 1 else { throw ValidationError("--frames must be at least 1") }
        guard width >= 16, height >= 16, width <= 4096, height <= 4096 else { throw ValidationError("image size must be 16-4096") }
        if let q = jpegQuality, !(1...100).contains(q) { throw ValidationError("--jpeg-quality must be 1-100") }
        guard framesPerLoop >= 10 else { throw ValidationError("--frames-per-loop must be at least 10") }
        guard (1...8).contains(colorSamples) else { throw ValidationError("--color-samples must be 1-8") }
    }

    func run() throws {
        logging.bootstrap()
        let url = URL(fileURLWithPath: folder)
        var options = SyntheticSequence.Options()
        options.frames = frames
        options.width = width
        options.height = height
        options.seed = seed
        options.recordProbabilities = recordProbabilities
        options.jpegQuality = jpegQuality
        options.trajectory = SyntheticTrajectory(framesPerLoop: framesPerLoop)
        if noNoise { options.noise = .none }
        options.colorSamples = colorSamples
        let start = Date()
        try SyntheticSequence.write(to: url, name: url.lastPathComponent, options: options) { done, total in
            if !logging.quiet && (done % 30 == 0 || done == total) {
                FileHandle.standardError.write(Data("rendered \(done)/\(total) frames\n".utf8))
            }
        }
        var renderer = SyntheticRenderer(trajectory: options.trajectory, intrinsics: SyntheticRenderer.defaultIntrinsics(width: width, height: height),
                                         noise: noNoise ? .none : DepthNoiseModel(), seed: seed)
        renderer.colorSamples = colorSamples
        let first = renderer.render(0).frame
        let preview = url.appendingPathComponent("preview.png")
        try PNGCodec.writeRGB(Preview.sideBySide([first.color, ClassSet.nyu40.colorize(first.labels!),
                                                  ColorRamp.colorize(depth: first.depth!, near: 0.5, far: 5)]), to: preview)
        print(String(format: "Wrote %d frames (%dx%d) to %@ in %.1f s; preview of frame 0 (RGB | labels | depth): %@",
                     frames, width, height, url.path, Date().timeIntervalSince(start), preview.path))
    }
}

/// Side-by-side montage of equally sized images.
enum Preview {
    static func sideBySide(_ images: [ColorImage]) -> ColorImage {
        let w = images[0].width, h = images[0].height
        var out = ColorImage(width: w * images.count, height: h, repeating: .black)
        for (k, image) in images.enumerated() {
            for y in 0..<h { for x in 0..<w { out[k * w + x, y] = image[x, y] } }
        }
        return out
    }
}
