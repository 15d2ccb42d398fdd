import Export
import Foundation
import Imaging
import Meshing
import Network
import Sequences

/// Every parser of untrusted files as a function of the file's bytes, shared by the libFuzzer
/// harness (`Fuzz/main.swift`, built by `scripts/fuzz.sh`) and the regression test that replays
/// `Tests/FuzzCorpus/<target>/` in the normal suite, so both run exactly the same code.
///
/// A target returns normally for a valid file and throws the parser's own error for an invalid
/// one; anything else (a trap, a sanitizer report, a leaked foreign error type) is a defect.
public enum FuzzTargets {
    public typealias Body = (Data) throws -> Void

    /// Target names, in the order `scripts/fuzz.sh all` runs them.
    public static let names = [
        "png-rgb", "png-gray8", "png-gray16", "jpeg", "npy", "ply", "mesh", "safetensors", "graph",
        "tum-list", "tum-groundtruth", "7scenes-pose", "7scenes-intrinsics", "icl-pose", "intrinsics", "manifest",
        "klg", "sens",
    ]

    public static func body(_ name: String) -> Body? {
        switch name {
        case "png-rgb": return { _ = try PNGCodec.readRGB(data: $0, path: "fuzz.png") }
        case "png-gray8": return { _ = try PNGCodec.readGray8(data: $0, path: "fuzz.png") }
        case "png-gray16": return { _ = try PNGCodec.readGray16(data: $0, path: "fuzz.png") }
        case "jpeg": return { _ = try JPEGCodec.decode($0, path: "fuzz.jpg") }
        case "npy": return { _ = try NPY.decode($0, path: "fuzz.npy") }
        case "ply": return { _ = try PLYReader.decode($0, path: "fuzz.ply").pointCloud() }
        // `semfuse mesh` on a crafted map: the volume, marching cubes, the coarsening and the
        // attributes from whatever positions, normals, radii and labels the file holds, within a
        // small memory bound (a few thousand points keep one run short).
        case "mesh": return {
            let cloud = try PLYReader.decode($0, path: "fuzz.ply").pointCloud()
            guard cloud.count <= 4096 else { return }
            var parameters = MeshingParameters(threads: 1)
            parameters.memoryLimitBytes = 64 << 20
            _ = try SurfelMesher.mesh(cloud, source: "fuzz.ply", parameters: parameters, colorMode: .rgb)
        }
        case "safetensors": return {
            _ = try Safetensors.decode($0, path: "fuzz.safetensors")
            _ = try Safetensors.metadata($0, path: "fuzz.safetensors")
        }
        case "graph": return {
            // Loading folds paddings; planning a small input infers every shape and lays out
            // the buffers (concatenations written in place), all from the crafted graph.
            let network = try GraphNetwork.load(data: $0, path: "fuzz.safetensors", threads: 1)
            _ = try network.multiplyAdds(height: 9, width: 7)
        }
        // The sequence readers take folders: the input becomes one file of a small, otherwise
        // valid sequence (see `Scratch`), and the reader opens it and reads its first frame.
        case "tum-list": return { data in
            let folder = try Scratch.shared.folder("tum", replacing: "rgb.txt", with: data)
            _ = try TUMReader(folder: folder).frame(at: 0)
        }
        case "tum-groundtruth": return { data in
            _ = try TUMTrajectory.read(Scratch.shared.file("groundtruth.txt", data))
            let folder = try Scratch.shared.folder("tum", replacing: "groundtruth.txt", with: data)
            _ = try TUMReader(folder: folder).frame(at: 0)
        }
        case "7scenes-pose": return { data in
            let folder = try Scratch.shared.folder("7scenes", replacing: "frame-000000.pose.txt", with: data)
            _ = try SevenScenesReader(folder: folder).frame(at: 0)
        }
        case "7scenes-intrinsics": return { data in
            let folder = try Scratch.shared.folder("7scenes", replacing: "camera-intrinsics.txt", with: data)
            _ = try SevenScenesReader(folder: folder).frame(at: 0)
        }
        case "icl-pose": return { data in
            let folder = try Scratch.shared.folder("icl", replacing: "pose.txt", with: data)
            _ = try ICLNUIMReader(folder: folder).frame(at: 0)
        }
        case "intrinsics": return { data in
            _ = try IntrinsicsArgument.parse(Scratch.shared.file("intrinsics.txt", data).path)
        }
        case "manifest": return { data in
            let folder = try Scratch.shared.folder("semfuse", replacing: "sequence.json", with: data)
            _ = try SemfuseSequenceReader(folder: folder).frame(at: 0)
        }
        // Recordings are single files: the input is the whole log or scan; the reader indexes it
        // and reads its first frames (zlib depth, JPEG/PNG/raw colour, registration).
        case "klg": return { data in
            let reader = try KLGReader(file: Scratch.shared.file("fuzz.klg", data))
            for k in 0..<min(reader.frameCount, 4) { _ = try reader.frame(at: k) }
        }
        case "sens": return { data in
            let reader = try ScanNetSensReader(file: Scratch.shared.file("fuzz.sens", data))
            for k in 0..<min(reader.frameCount, 4) { _ = try reader.frame(at: k) }
        }
        default: return nil
        }
    }

    /// Whether `error` is one of the project's typed errors (each names the file), as opposed to
    /// a foreign error leaking through a parser.
    public static func isTyped(_ error: Error) -> Bool {
        error is ImagingError || error is ExportError || error is NetworkError || error is SequenceError || error is MeshingError
    }
}

/// Small valid sequences in a private temporary folder, one per layout, built once per process:
/// 4x3 colour and depth PNGs, a 4x3 label PNG and probability NPY, and the text files each
/// layout needs. A target overwrites one file with the fuzz input; the next input restores it.
public final class Scratch: @unchecked Sendable {
    public static let shared = Scratch()
    let root: URL
    private var originals: [String: Data] = [:]
    private var replaced: [String: String] = [:]

    private init() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("semfuse-fuzz-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        let color = try! PNGCodec.encodeRGB(ColorImage(width: 4, height: 3, pixels: (0..<12).map { RGB8(UInt8($0 * 20), 100, 200) }))
        let depth = try! PNGCodec.encodeGray16(Image(width: 4, height: 3, pixels: (0..<12).map { UInt16(1000 + 10 * $0) }))
        let labels = try! PNGCodec.encodeGray8(Image(width: 4, height: 3, pixels: (0..<12).map { UInt8($0 % 13) }))
        let probabilities = try! NPY.encode(NPYArray(shape: [13, 3, 4], values: (0..<156).map { Float($0 % 7) / 7 }))
        let files: [String: Data] = [
            "tum/rgb.txt": Data("# color images\n1.000000 rgb/1.png\n1.033000 rgb/2.png\n".utf8),
            "tum/depth.txt": Data("# depth images\n1.001000 depth/1.png\n1.034000 depth/2.png\n".utf8),
            "tum/groundtruth.txt": Data("# timestamp tx ty tz qx qy qz qw\n0.990 0.1 0.2 0.3 0 0 0 1\n1.010 0.1 0.2 0.31 0 0 0.01 1\n1.040 0.1 0.2 0.32 0 0 0.02 1\n".utf8),
            "tum/rgb/1.png": color, "tum/rgb/2.png": color, "tum/depth/1.png": depth, "tum/depth/2.png": depth,
            "7scenes/frame-000000.color.png": color, "7scenes/frame-000000.depth.png": depth,
            "7scenes/frame-000000.pose.txt": Data("1 0 0 0.1\n0 1 0 0.2\n0 0 1 0.3\n0 0 0 1\n".utf8),
            "7scenes/camera-intrinsics.txt": Data("3.6 0 2\n0 3.6 1.5\n0 0 1\n".utf8),
            "icl/color/1.png": color, "icl/depth/1.png": depth,
            "icl/pose.txt": Data("0.1 0.2 0.3 0 0 0 1\n".utf8),
            "semfuse/rgb.png": color, "semfuse/depth.png": depth, "semfuse/labels.png": labels,
            "semfuse/probabilities.npy": probabilities,
            "semfuse/poses.txt": Data("0 0.1 0.2 0.3 0 0 0 1\n".utf8),
            "semfuse/sequence.json": Data("""
                {"format": "semfuse-sequence", "version": 1, "name": "fuzz", "depth_scale": 1000, "class_set": "nyu13",
                 "intrinsics": {"fx": 3.6, "fy": 3.6, "cx": 2, "cy": 1.5, "width": 4, "height": 3}, "poses": "poses.txt",
                 "frames": [{"timestamp": 0, "rgb": "rgb.png", "depth": "depth.png", "labels": "labels.png", "probabilities": "probabilities.npy"}]}
                """.utf8),
        ]
        for (path, data) in files {
            let url = root.appendingPathComponent(path)
            try! FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try! data.write(to: url)
            originals[path] = data
        }
    }

    /// `layout`'s folder with `name` holding `data`; the file it replaced last time is restored.
    func folder(_ layout: String, replacing name: String, with data: Data) throws -> URL {
        let folder = root.appendingPathComponent(layout)
        if let previous = replaced[layout], previous != name, let original = originals["\(layout)/\(previous)"] {
            try original.write(to: folder.appendingPathComponent(previous))
        }
        replaced[layout] = name
        try data.write(to: folder.appendingPathComponent(name))
        return folder
    }

    /// A loose file holding `data`.
    func file(_ name: String, _ data: Data) throws -> URL {
        let url = root.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    /// The folder's seed file for `layout/name` (the valid original), for corpus generation.
    public func original(_ path: String) -> Data? { originals[path] }
}
