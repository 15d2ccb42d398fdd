import Foundation
import Imaging
import Network
import Semantics

/// Writes what the network predicts for one image in the forms people and tools use.
public enum PredictionWriter {
    /// Depth PNGs use the TUM scale: 5000 units per metre (0 = no depth, saturating at 13.1 m).
    public static let depthScale: Float = 5000
    /// Far end of the depth colour map in previews, as the authors' NYU notebooks (0-8 m).
    public static let previewFarDepth: Float = 8

    public struct Options: Sendable {
        /// Also write softmax class probabilities at output stride 4 (`[40, h, w]` float16 .npy).
        public var probabilities = false
        /// Write `segm.npy` and `depth.npy` (raw logits and depth before `abs`, stride 4, float32)
        /// into this folder.
        public var rawDirectory: URL?
        public var preview = true
        public var threads = 1
        public init() {}
    }

    /// Writes `<stem>.depth.png`, `<stem>.labels.png` (NYU palette), `<stem>.label-ids.png`
    /// (class id per pixel), `<stem>.preview.png` (input | labels | depth) and, for 3-task
    /// checkpoints, `<stem>.normals.png` into `directory`.
    /// Returns the files written.
    @discardableResult
    public static func write(_ output: NetworkOutput, image: ColorImage, stem: String, to directory: URL,
                             options: Options = Options()) throws -> [URL] {
        // segm.npy keeps every logit the network produced (46 for NYU+KITTI).
        try write(DensePrediction(joint: output), classSet: .nyu40, image: image, stem: stem, to: directory, options: options,
                  rawLogits: output.logitMap)
    }

    /// Writes whatever a model predicted: labels (`classSet` palette) and ids when it has
    /// logits, the depth PNG when it has depth, the preview of what there is, normals, and
    /// with `rawDirectory` the raw `segm.npy` (float32 `1 x C x h x w` logits) and `depth.npy`
    /// (float32 `1 x 1 x h x w`, metres).
    @discardableResult
    public static func write(_ prediction: DensePrediction, classSet: ClassSet?, image: ColorImage, stem: String, to directory: URL,
                             options: Options = Options(), rawLogits: PlanarMap? = nil) throws -> [URL] {
        var written: [URL] = []
        func url(_ suffix: String) -> URL { directory.appendingPathComponent("\(stem).\(suffix)") }
        var previewParts = [image]
        if let logits = prediction.logits, let classSet {
            let labels = logits.labels(height: image.height, width: image.width, threads: options.threads)
            let coloured = classSet.colorize(labels)
            try PNGCodec.writeRGB(coloured, to: url("labels.png")); written.append(url("labels.png"))
            try PNGCodec.writeGray8(labels, to: url("label-ids.png")); written.append(url("label-ids.png"))
            previewParts.append(coloured)
            if options.probabilities {
                let p = logits.classProbabilities()
                var chw = [Float](repeating: 0, count: p.values.count)
                let plane = p.width * p.height
                for i in 0..<plane { for c in 0..<p.classCount { chw[c * plane + i] = p.values[i * p.classCount + c] } }
                try NPY.write(NPYArray(shape: [p.classCount, p.height, p.width], values: chw), to: url("probabilities.npy"), dtype: .float16)
                written.append(url("probabilities.npy"))
            }
        }
        if let depth = prediction.depthImage(width: image.width, height: image.height) {
            let depthPNG = depth.map { z -> UInt16 in
                guard z.isFinite, z > 0 else { return 0 }
                return UInt16(min(65535, (z * depthScale).rounded()))
            }
            try PNGCodec.writeGray16(depthPNG, to: url("depth.png")); written.append(url("depth.png"))
            previewParts.append(ColorRamp.colorize(depth: depth, near: 0, far: previewFarDepth))
        }
        if options.preview {
            try PNGCodec.writeRGB(sideBySide(previewParts), to: url("preview.png"))
            written.append(url("preview.png"))
        }
        if let normals = prediction.normals {
            // 3-task checkpoints: per-pixel unit normals coloured as the authors' notebook does,
            // RGB = ((nx + 1)/2, (ny + 1)/2, (1 − nz)/2).
            let up = resizeBicubic(normals.values, channels: 3, height: normals.height, width: normals.width,
                                   toHeight: image.height, width: image.width, threads: options.threads)
            let plane = image.width * image.height
            var colours = ColorImage(width: image.width, height: image.height, repeating: .black)
            for i in 0..<plane {
                let n = SIMD3<Float>(up[i], up[plane + i], up[2 * plane + i])
                let length = (n * n).sum().squareRoot()
                guard length > 0, length.isFinite else { continue }
                let u = n / length
                func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, (v * 255).rounded()))) }
                colours.pixels[i] = RGB8(byte((u.x + 1) / 2), byte((u.y + 1) / 2), byte((1 - u.z) / 2))
            }
            try PNGCodec.writeRGB(colours, to: url("normals.png")); written.append(url("normals.png"))
        }
        if let raw = options.rawDirectory {
            try FileData.prepareFolder(raw)
            if let logits = rawLogits ?? prediction.logits {
                let segm = raw.appendingPathComponent("segm.npy")
                try NPY.write(NPYArray(shape: [1, logits.channels, logits.height, logits.width], values: logits.values), to: segm)
                written.append(segm)
            }
            if let depth = prediction.depth {
                let depthURL = raw.appendingPathComponent("depth.npy")
                try NPY.write(NPYArray(shape: [1, 1, depth.height, depth.width], values: depth.values), to: depthURL)
                written.append(depthURL)
            }
            if let normals = prediction.normals {
                let normalURL = raw.appendingPathComponent("normal.npy")
                try NPY.write(NPYArray(shape: [1, 3, normals.height, normals.width], values: normals.values), to: normalURL)
                written.append(normalURL)
            }
        }
        return written
    }

    /// Images next to each other with a 4-pixel dark gap, top-aligned.
    public static func sideBySide(_ images: [ColorImage]) -> ColorImage {
        let gap = 4
        let width = images.reduce(0) { $0 + $1.width } + gap * (images.count - 1)
        let height = images.map(\.height).max() ?? 0
        var canvas = ColorImage(width: width, height: height, repeating: RGB8(32, 32, 32))
        var x0 = 0
        for image in images {
            for y in 0..<image.height {
                for x in 0..<image.width { canvas.pixels[y * width + x0 + x] = image.pixels[y * image.width + x] }
            }
            x0 += image.width + gap
        }
        return canvas
    }
}

extension NetworkPredictor {
    /// The output restricted to the NYU-40 logits (the NYU+KITTI checkpoint has 46).
    public static func nyu40Output(_ output: NetworkOutput) -> NetworkOutput {
        guard output.classCount > 40 else { return output }
        var nyu = output
        nyu.classCount = 40
        nyu.logits = Array(output.logits.prefix(40 * output.height * output.width))
        return nyu
    }
}
