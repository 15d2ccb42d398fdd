import Foundation
import Geometry
import Imaging
import Semantics

/// Renders a synthetic room sequence straight into the project's sequence format.
public enum SyntheticSequence {
    public struct Options: Sendable {
        public var frames = 240
        public var width = 320
        public var height = 240
        public var seed: UInt64 = 1
        /// Depth units per metre in the written PNGs (1000 = millimetres, like the Kinect).
        public var depthScale = 1000.0
        /// Also store the simulated segmenter's probabilities (float16, output stride 4).
        public var recordProbabilities = false
        /// Store colour as JPEG of this quality instead of PNG (smaller; the bundled sequence uses 92).
        public var jpegQuality: Int?
        public var trajectory = SyntheticTrajectory()
        public var noise = DepthNoiseModel()
        /// Colour rays per pixel along each axis (`SyntheticRenderer.colorSamples`).
        public var colorSamples = 2
        public init() {}
    }

    /// Writes `options.frames` frames to `folder`; `progress(done, total)` after each.
    public static func write(to folder: URL, name: String, options: Options, progress: ((Int, Int) -> Void)? = nil) throws {
        let intrinsics = SyntheticRenderer.defaultIntrinsics(width: options.width, height: options.height)
        var renderer = SyntheticRenderer(trajectory: options.trajectory, intrinsics: intrinsics, noise: options.noise, seed: options.seed)
        renderer.colorSamples = options.colorSamples
        let segmenter = SimulatedSegmenter(classSet: .nyu40, seed: options.seed)
        let writer = try SemfuseSequenceWriter(folder: folder, name: name, intrinsics: intrinsics, depthScale: options.depthScale, classSet: .nyu40,
                                              jpegQuality: options.jpegQuality, colorRegisteredToDepth: true, depthRendered: true)
        for i in 0..<options.frames {
            var frame = renderer.render(i).frame
            if options.recordProbabilities, let labels = frame.labels {
                frame.probabilities = segmenter.predict(labels: labels, frameIndex: i)
            }
            try writer.append(frame)
            progress?(i + 1, options.frames)
        }
        try writer.finish(notes: [
            "Procedural living room rendered by semfuse synth: RGB, Kinect-like noisy depth, NYU-40 ground-truth labels, ground-truth poses.",
            "Use 'semfuse reconstruct <folder> --labels simulated' to fuse an imperfect simulated segmenter's predictions.",
        ], generator: [
            "tool": SequenceManifest.synthesiser, "seed": "\(options.seed)", "frames": "\(options.frames)",
            "size": "\(options.width)x\(options.height)", "frames_per_loop": "\(options.trajectory.framesPerLoop)",
            "depth_noise": options.noise.enabled ? "kinect-v1" : "none",
            "color_samples": "\(options.colorSamples)x\(options.colorSamples)",
        ])
    }
}
