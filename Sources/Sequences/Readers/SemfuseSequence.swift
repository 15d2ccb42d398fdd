import Foundation
import Geometry
import Imaging
import Semantics

/// The `sequence.json` manifest of the project's own sequence format (docs/sequence-format.md).
public struct SequenceManifest: Codable, Equatable, Sendable {
    public struct CameraEntry: Codable, Equatable, Sendable {
        public var fx, fy, cx, cy: Double
        public var width, height: Int
    }

    public struct FrameEntry: Codable, Equatable, Sendable {
        public var timestamp: Double
        public var rgb: String
        public var depth: String?
        public var labels: String?
        public var probabilities: String?
        public init(timestamp: Double, rgb: String, depth: String? = nil, labels: String? = nil, probabilities: String? = nil) {
            self.timestamp = timestamp; self.rgb = rgb; self.depth = depth; self.labels = labels; self.probabilities = probabilities
        }
    }

    public static let formatName = "semfuse-sequence"
    public var format = SequenceManifest.formatName
    public var version = 1
    public var name: String
    public var intrinsics: CameraEntry
    /// Integer depth units per metre.
    public var depthScale: Double
    /// "nyu40" or "nyu13" when the sequence has labels or probabilities.
    public var classSet: String?
    /// Relative path of the TUM-format poses (camera-to-world), one per frame, if any.
    public var poses: String?
    public var notes: [String]?
    public var generator: [String: String]?
    /// Whether colour is registered to depth (`SequenceCapabilities.colorRegisteredToDepth`).
    /// Absent in sequences written before it existed: then true only for `semfuse synth`'s.
    public var colorRegisteredToDepth: Bool?
    /// Whether the depth is rendered (`SequenceCapabilities.depthIsRendered`); absent: true only
    /// for `semfuse synth`'s sequences.
    public var depthRendered: Bool?
    public var frames: [FrameEntry]

    /// Colour registered to depth as stated, or as implied by the writer when not stated.
    public var colorIsRegisteredToDepth: Bool {
        colorRegisteredToDepth ?? (generator?["tool"] == SequenceManifest.synthesiser)
    }
    /// Depth rendered as stated, or as implied by the writer when not stated.
    public var depthIsRendered: Bool {
        depthRendered ?? (generator?["tool"] == SequenceManifest.synthesiser)
    }
    /// The `generator.tool` of `semfuse synth`'s sequences (one camera renders colour and depth).
    public static let synthesiser = "semfuse synth"

    enum CodingKeys: String, CodingKey {
        case format, version, name, intrinsics, poses, notes, generator, frames
        case depthScale = "depth_scale"
        case classSet = "class_set"
        case colorRegisteredToDepth = "color_registered_to_depth"
        case depthRendered = "depth_rendered"
    }
}

/// Reads the project's own sequence folders: `sequence.json`, `rgb/`, `depth/`, optional
/// `labels/`, `probabilities/` (.npy, [C, h, w]) and `poses.txt` (TUM format).
public final class SemfuseSequenceReader: FrameSource {
    public let folder: URL
    public let manifest: SequenceManifest
    public let intrinsics: Intrinsics
    public let capabilities: SequenceCapabilities
    public let classSet: ClassSet?
    public var name: String { manifest.name }
    public var layout: String { "semfuse" }
    public var frameCount: Int { manifest.frames.count }
    private let poses: [StampedPose]?
    private let options: ReaderOptions
    private let depthScale: Double

    public static func detect(_ folder: URL) -> Bool {
        ReaderSupport.fileExists(folder.appendingPathComponent("sequence.json"))
    }

    public init(folder: URL, options: ReaderOptions = ReaderOptions()) throws {
        self.folder = folder
        self.options = options
        let manifestURL = folder.appendingPathComponent("sequence.json")
        guard ReaderSupport.fileExists(manifestURL) else { throw SequenceError.notFound(path: manifestURL.path) }
        let data = try ReaderSupport.image { try FileData.read(manifestURL) }
        do {
            manifest = try JSONDecoder().decode(SequenceManifest.self, from: data)
        } catch let error as DecodingError {
            throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: Self.explain(error, data: data))
        } catch {
            throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: "not valid JSON: \(error.localizedDescription)")
        }
        guard manifest.format == SequenceManifest.formatName else {
            throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: "format is '\(manifest.format)', expected '\(SequenceManifest.formatName)'")
        }
        guard manifest.version == 1 else {
            throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: "version \(manifest.version) is newer than this reader (1)")
        }
        guard !manifest.frames.isEmpty else { throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: "no frames") }
        let cam = manifest.intrinsics
        let k = options.intrinsics?.intrinsics(width: cam.width, height: cam.height)
            ?? Intrinsics(fx: cam.fx, fy: cam.fy, cx: cam.cx, cy: cam.cy, width: cam.width, height: cam.height)
        intrinsics = try ReaderSupport.validated(k, source: manifestURL.path)
        if let problem = InputLimits.depthScale(manifest.depthScale, "depth_scale") {
            throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: problem)
        }
        depthScale = try ReaderSupport.depthScale(options, default: manifest.depthScale)
        try Self.checkPathsStayInside(manifest, manifest: manifestURL.path)
        if let name = manifest.classSet {
            guard let set = ClassSet.named(name) else {
                throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: "unknown class_set '\(name)' (nyu40 or nyu13)")
            }
            classSet = set
        } else {
            classSet = nil
        }
        if let posesPath = manifest.poses {
            let url = folder.appendingPathComponent(posesPath)
            let list = try TUMTrajectory.read(url)
            guard list.count == manifest.frames.count else {
                throw SequenceError.malformed(path: url.path, line: nil, reason: "\(list.count) poses for \(manifest.frames.count) frames")
            }
            poses = list
        } else {
            poses = nil
        }
        let frames = manifest.frames
        let hasLabels = frames.contains { $0.labels != nil }
        let hasProbabilities = frames.contains { $0.probabilities != nil }
        if (hasLabels || hasProbabilities) && classSet == nil {
            throw SequenceError.malformed(path: manifestURL.path, line: nil, reason: "labels or probabilities need a class_set")
        }
        capabilities = SequenceCapabilities(hasDepth: frames.allSatisfy { $0.depth != nil }, hasPoses: poses != nil,
                                            hasLabels: hasLabels, hasProbabilities: hasProbabilities,
                                            colorRegisteredToDepth: manifest.colorIsRegisteredToDepth, depthIsRendered: manifest.depthIsRendered)
    }

    public func frame(at index: Int) throws -> Frame {
        guard index >= 0, index < frameCount else { throw SequenceError.frameOutOfRange(index: index, count: frameCount) }
        let entry = manifest.frames[index]
        let colorURL = folder.appendingPathComponent(entry.rgb)
        let color = try ReaderSupport.color(colorURL, frame: index, intrinsics: intrinsics)
        let depth = try entry.depth.map {
            try ReaderSupport.depth(folder.appendingPathComponent($0), frame: index, scale: depthScale, intrinsics: intrinsics, options: options)
        }
        var labels: LabelImage?
        if let path = entry.labels, let classSet {
            let url = folder.appendingPathComponent(path)
            let image = try ReaderSupport.labels(url, frame: index, intrinsics: intrinsics)
            if let bad = image.pixels.firstIndex(where: { $0 != ClassSet.ignoreLabel && Int($0) >= classSet.count }) {
                throw SequenceError.malformed(path: url.path, line: nil,
                                              reason: "class id \(image.pixels[bad]) at pixel (\(bad % image.width), \(bad / image.width)) is outside \(classSet.name) (0-\(classSet.count - 1), 255 = ignore)")
            }
            labels = image
        }
        var probabilities: ClassProbabilityMap?
        if let path = entry.probabilities, let classSet {
            probabilities = try Self.readProbabilities(folder.appendingPathComponent(path), classCount: classSet.count, frame: index)
        }
        return Frame(index: index, timestamp: entry.timestamp, color: color, depth: depth, worldFromCamera: poses?[index].pose,
                     labels: labels, probabilities: probabilities, source: colorURL.path)
    }

    /// Says which field is wrong and how, for every decoding failure (Foundation's own text for
    /// a wrong type is "The data couldn't be read because it isn't in the correct format").
    static func explain(_ error: DecodingError, data: Data) -> String {
        func field(_ path: [CodingKey]) -> String {
            var text = ""
            for key in path {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "the top level" : "'\(text)'"
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field '\((context.codingPath + [key]).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: "."))'"
                .replacingOccurrences(of: ".[", with: "[")
        case .typeMismatch(let type, let context):
            return "field \(field(context.codingPath)) has the wrong type: expected \(describe(type))\(found(context.codingPath, in: data))"
        case .valueNotFound(let type, let context):
            return "field \(field(context.codingPath)) is null, expected \(describe(type))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return "not valid JSON: \((context.underlyingError as NSError?)?.localizedDescription ?? context.debugDescription)"
            }
            return "field \(field(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "not a valid manifest: \(error)"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Double.Type, is Float.Type: return "a number"
        case is Int.Type: return "a whole number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "an object"
        }
    }

    /// ", found <kind>" from the raw JSON at `path`, when it can be looked up.
    private static func found(_ path: [CodingKey], in data: Data) -> String {
        guard var value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return "" }
        for key in path {
            if let index = key.intValue, let list = value as? [Any], list.indices.contains(index) { value = list[index] }
            else if let object = value as? [String: Any], let next = object[key.stringValue] { value = next }
            else { return "" }
        }
        switch value {
        case is String: return ", found a string"
        case is [Any]: return ", found a list"
        case is [String: Any]: return ", found an object"
        case is NSNull: return ", found null"
        case let number as NSNumber: return ", found \(number)"
        default: return ""
        }
    }

    /// Every file a manifest names must be a relative path inside the sequence folder: a
    /// manifest is data, and `../` or an absolute path would let it read any file on the
    /// machine (and write beside it when the sequence is re-recorded).
    static func checkPathsStayInside(_ manifest: SequenceManifest, manifest path: String) throws {
        var named: [(String, String)] = manifest.poses.map { [("poses", $0)] } ?? []
        for (k, frame) in manifest.frames.enumerated() {
            named.append(("frames[\(k)].rgb", frame.rgb))
            if let p = frame.depth { named.append(("frames[\(k)].depth", p)) }
            if let p = frame.labels { named.append(("frames[\(k)].labels", p)) }
            if let p = frame.probabilities { named.append(("frames[\(k)].probabilities", p)) }
        }
        for (field, value) in named {
            let parts = value.split(separator: "/", omittingEmptySubsequences: true)
            let problem: String?
            if value.isEmpty { problem = "is empty" }
            else if value.hasPrefix("/") { problem = "is absolute" }
            else if parts.contains("..") { problem = "contains '..'" }
            else if value.contains("\0") { problem = "contains a NUL character" }
            else { problem = nil }
            if let problem {
                throw SequenceError.malformed(path: path, line: nil,
                                              reason: "\(field) '\(value)' \(problem): paths must be relative and stay inside the sequence folder")
            }
        }
    }

    /// Reads a [C, h, w] (or [1, C, h, w]) probability array into a pixel-major map.
    static func readProbabilities(_ url: URL, classCount: Int, frame: Int) throws -> ClassProbabilityMap {
        guard ReaderSupport.fileExists(url) else { throw SequenceError.missingFile(path: url.path, frame: frame) }
        let array = try ReaderSupport.image { try NPY.read(url) }
        var shape = array.shape
        if shape.count == 4 && shape[0] == 1 { shape.removeFirst() }
        guard shape.count == 3 else {
            throw SequenceError.malformed(path: url.path, line: nil, reason: "probabilities must have shape [C, h, w], found \(array.shape)")
        }
        guard shape[0] == classCount else {
            throw SequenceError.malformed(path: url.path, line: nil, reason: "\(shape[0]) classes, the sequence's class set has \(classCount)")
        }
        let (c, h, w) = (shape[0], shape[1], shape[2])
        guard h > 0, w > 0 else {
            throw SequenceError.malformed(path: url.path, line: nil, reason: "probabilities of an empty \(w)x\(h) image")
        }
        var values = [Float](repeating: 0, count: c * h * w)
        for k in 0..<c {
            for p in 0..<(h * w) {
                let v = array.values[k * h * w + p]
                guard v.isFinite, v >= 0 else {
                    throw SequenceError.malformed(path: url.path, line: nil,
                                                  reason: "probability \(v) at class \(k), pixel (\(p % w), \(p / w)) is not a finite non-negative number")
                }
                values[p * c + k] = v
            }
        }
        return ClassProbabilityMap(width: w, height: h, classCount: c, values: values)
    }
}
