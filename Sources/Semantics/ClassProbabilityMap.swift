import Imaging

/// Errors about semantic inputs; each names the source.
public enum SemanticsError: Error, CustomStringConvertible, Equatable {
    case unknownClassId(source: String, id: Int, classCount: Int, x: Int, y: Int)
    case invalidProbabilities(source: String, reason: String)
    case invalidConfidence(Double)

    public var description: String {
        switch self {
        case .unknownClassId(let s, let id, let n, let x, let y):
            return "\(s): class id \(id) at pixel (\(x), \(y)) is outside the class set (0-\(n - 1), 255 = ignore)"
        case .invalidProbabilities(let s, let r): return "\(s): invalid class probabilities: \(r)"
        case .invalidConfidence(let c): return "label confidence \(c) must be in (1/classes, 1)"
        }
    }
}

/// Per-pixel class probabilities, stored pixel-major (all classes of one pixel together) since
/// label fusion reads one pixel's vector at a time. May have a lower resolution than the frame;
/// lookups scale pixel coordinates (nearest), as SemanticFusion does with CNN outputs.
public struct ClassProbabilityMap: @unchecked Sendable {
    public let width: Int
    public let height: Int
    public let classCount: Int
    /// `values[(y * width + x) * classCount + c]`; a pixel whose vector is all zeros carries no
    /// evidence and is skipped by fusion.
    public var values: [Float]

    public init(width: Int, height: Int, classCount: Int, values: [Float]) {
        precondition(values.count == width * height * classCount)
        self.width = width; self.height = height; self.classCount = classCount; self.values = values
    }

    /// Turns a label image into probabilities: the labelled class gets `confidence`, the rest
    /// share the remainder evenly. Pixels with `ClassSet.ignoreLabel` get no evidence.
    public init(labels: LabelImage, classCount: Int, confidence: Double, source: String) throws {
        guard classCount >= 2, confidence > 1.0 / Double(classCount), confidence < 1 else {
            throw SemanticsError.invalidConfidence(confidence)
        }
        let hit = Float(confidence)
        let miss = Float((1 - confidence) / Double(classCount - 1))
        var values = [Float](repeating: 0, count: labels.count * classCount)
        for y in 0..<labels.height {
            for x in 0..<labels.width {
                let label = labels[x, y]
                if label == ClassSet.ignoreLabel { continue }
                guard Int(label) < classCount else {
                    throw SemanticsError.unknownClassId(source: source, id: Int(label), classCount: classCount, x: x, y: y)
                }
                let base = (y * labels.width + x) * classCount
                for c in 0..<classCount { values[base + c] = miss }
                values[base + Int(label)] = hit
            }
        }
        self.init(width: labels.width, height: labels.height, classCount: classCount, values: values)
    }

    /// Checks every value is finite and non-negative; returns the first problem found.
    /// Fusion checks every prediction it is given, so the common case (all values fine) is one
    /// sixteen-lane pass; only a map with a problem is scanned again to name it.
    public func validationProblem() -> String? {
        if Self.allFiniteAndNonNegative(values) { return nil }
        for (i, v) in values.enumerated() where !(v.isFinite && v >= 0) {
            let pixel = i / classCount
            return "value \(v) at pixel (\(pixel % width), \(pixel / width)) class \(i % classCount)"
        }
        return nil
    }

    /// Whether every value is finite and ≥ 0 (NaN fails both comparisons).
    static func allFiniteAndNonNegative(_ values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { buffer in
            let n = buffer.count
            var ok = SIMDMask<SIMD16<Int32>>(repeating: true)
            var i = 0
            if let base = buffer.baseAddress {
                let raw = UnsafeRawPointer(base)
                let zero = SIMD16<Float>(repeating: 0), infinity = SIMD16<Float>(repeating: .infinity)
                while i + 16 <= n {
                    let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                    ok = ok .& (v .>= zero) .& (v .< infinity)
                    i += 16
                }
            }
            guard all(ok) else { return false }
            while i < n {
                let v = buffer[i]
                guard v >= 0, v < .infinity else { return false }
                i += 1
            }
            return true
        }
    }

    /// The most likely class per pixel (255 where the pixel has no evidence).
    public func argmax() -> LabelImage {
        var out = LabelImage(width: width, height: height, repeating: ClassSet.ignoreLabel)
        for i in 0..<(width * height) {
            var best = -1
            var bestValue: Float = 0
            for c in 0..<classCount where values[i * classCount + c] > bestValue {
                bestValue = values[i * classCount + c]; best = c
            }
            if best >= 0 { out.pixels[i] = UInt8(best) }
        }
        return out
    }
}

/// Maps one class set onto a coarser one (e.g. NYU-40 → NYU-13): probabilities of classes that
/// merge are summed, labels are looked up.
public struct ClassMapping: Sendable, Equatable {
    public let source: ClassSet
    public let target: ClassSet
    /// `table[sourceId]` = target id.
    public let table: [Int]

    /// The mapping between two class sets, if one is known: identity, NYU-40 → NYU-13,
    /// ADE-32 → NYU-40, and ADE-32 → NYU-13 through NYU-40.
    public init?(from source: ClassSet, to target: ClassSet) {
        self.source = source; self.target = target
        switch (source.name, target.name) {
        case _ where source == target: table = Array(0..<source.count)
        case (ClassSet.nyu40.name, ClassSet.nyu13.name): table = ClassSet.nyu40ToNyu13
        case (ClassSet.ade32.name, ClassSet.nyu40.name): table = ClassSet.ade32ToNyu40
        case (ClassSet.ade32.name, ClassSet.nyu13.name): table = ClassSet.ade32ToNyu40.map { ClassSet.nyu40ToNyu13[$0] }
        default: return nil
        }
    }

    public func map(_ probabilities: ClassProbabilityMap) -> ClassProbabilityMap {
        let c = probabilities.classCount, t = target.count
        var values = [Float](repeating: 0, count: probabilities.width * probabilities.height * t)
        for p in 0..<(probabilities.width * probabilities.height) {
            for k in 0..<c { values[p * t + table[k]] += probabilities.values[p * c + k] }
        }
        return ClassProbabilityMap(width: probabilities.width, height: probabilities.height, classCount: t, values: values)
    }

    public func map(_ labels: LabelImage) -> LabelImage {
        labels.map { $0 == ClassSet.ignoreLabel || Int($0) >= table.count ? $0 : UInt8(table[Int($0)]) }
    }
}
