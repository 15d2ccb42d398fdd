import Export
import Foundation
import Geometry
import Imaging
import Mapping
import Semantics
import Sequences

/// Relative pose error between frame pairs `delta` apart (translation RMSE in metres, mean
/// rotation error in degrees), as in the TUM benchmark.
public struct RelativePoseError: Sendable, CustomStringConvertible {
    public var translationRMSE: Double
    public var rotationMeanDegrees: Double
    public var pairs: Int

    public init?(estimated: [RigidTransform], groundTruth: [RigidTransform], delta: Int = 1) {
        let n = min(estimated.count, groundTruth.count)
        guard delta >= 1, n > delta else { return nil }
        var sumT = 0.0, sumR = 0.0
        for i in 0..<(n - delta) {
            let q = groundTruth[i].inverse * groundTruth[i + delta]
            let p = estimated[i].inverse * estimated[i + delta]
            let e = q.inverse * p
            sumT += e.translationNorm * e.translationNorm
            sumR += e.rotationAngle * 180 / .pi
        }
        pairs = n - delta
        translationRMSE = (sumT / Double(pairs)).squareRoot()
        rotationMeanDegrees = sumR / Double(pairs)
    }

    public var description: String {
        String(format: "RPE translation RMSE %.1f mm/frame, rotation mean %.2f deg/frame over %d pairs",
               translationRMSE * 1000, rotationMeanDegrees, pairs)
    }
}

/// Per-class IoU, mean IoU and pixel accuracy from a confusion matrix.
public struct SegmentationScore: Sendable {
    public let classSet: ClassSet
    /// `confusion[truth * C + predicted]`.
    public private(set) var confusion: [Int]

    public init(classSet: ClassSet) {
        self.classSet = classSet
        confusion = [Int](repeating: 0, count: classSet.count * classSet.count)
    }

    public mutating func add(truth: Int, predicted: Int) {
        let c = classSet.count
        guard truth >= 0, truth < c, predicted >= 0, predicted < c else { return }
        confusion[truth * c + predicted] += 1
    }

    public var pixels: Int { confusion.reduce(0, +) }

    public var pixelAccuracy: Double? {
        let c = classSet.count
        let correct = (0..<c).reduce(0) { $0 + confusion[$1 * c + $1] }
        return pixels > 0 ? Double(correct) / Double(pixels) : nil
    }

    /// IoU of every class that occurs in the ground truth or the prediction.
    public var classIoU: [(classId: Int, iou: Double)] {
        let c = classSet.count
        var out: [(Int, Double)] = []
        for k in 0..<c {
            let tp = confusion[k * c + k]
            let truth = (0..<c).reduce(0) { $0 + confusion[k * c + $1] }
            let predicted = (0..<c).reduce(0) { $0 + confusion[$1 * c + k] }
            let union = truth + predicted - tp
            if union > 0 { out.append((k, Double(tp) / Double(union))) }
        }
        return out
    }

    public var meanIoU: Double? {
        let ious = classIoU.map(\.iou)
        return ious.isEmpty ? nil : ious.reduce(0, +) / Double(ious.count)
    }
}

/// Scores a reconstruction against a sequence's ground truth: trajectory (ATE, RPE) and the
/// labelled map rendered into the ground-truth label frames, next to the per-frame predictions
/// on the same pixels.
public struct Evaluation {
    public var ate: AbsoluteTrajectoryError?
    public var rpe: RelativePoseError?
    public var trajectoryFrames = 0
    /// Ground-truth frames left out of the trajectory score because their pose could not be used
    /// (frame position, the reader's error naming the file).
    public var leftOut: [(position: Int, reason: String)] = []
    public var mapScore: SegmentationScore?
    public var predictionScore: SegmentationScore?
    public var labelFrames = 0

    public init() {}

    /// Pairs trajectory entries with sequence frames by nearest timestamp (within `maxGap` s).
    public static func trajectory(_ estimated: [StampedPose], source: FrameSource, maxGap: Double = 0.02) throws -> Evaluation {
        var result = Evaluation()
        var est: [RigidTransform] = [], truth: [RigidTransform] = []
        var stamps: [(Double, RigidTransform)] = []
        for position in 0..<source.frameCount {
            let truth = try source.groundTruth(at: position)
            if let pose = truth.pose { stamps.append((truth.timestamp, pose)) }
            if let error = truth.poseError { result.leftOut.append((position, error.description)) }
        }
        guard !stamps.isEmpty else { throw PipelineError.missingPoses(sequence: source.name) }
        for entry in estimated {
            guard let best = stamps.min(by: { abs($0.0 - entry.timestamp) < abs($1.0 - entry.timestamp) }),
                  abs(best.0 - entry.timestamp) <= maxGap else { continue }
            est.append(entry.pose); truth.append(best.1)
        }
        result.trajectoryFrames = est.count
        result.ate = AbsoluteTrajectoryError(estimated: est, groundTruth: truth)
        result.rpe = RelativePoseError(estimated: est, groundTruth: truth)
        return result
    }

    /// Renders the labelled points of `cloud` into every `every`-th ground-truth label frame of
    /// `source` and scores them; `predictor` (optional) is scored on the same pixels.
    /// `truthMapping` maps the sequence's label ids into the map's class set when they differ.
    public mutating func labels(cloud: PointCloud, classSet: ClassSet, source: FrameSource, predictor: Predictor?,
                                truthMapping: ClassMapping? = nil, every: Int = 10) throws {
        guard let labels = cloud.labels else {
            throw PipelineError.invalidOption("the map has no 'label' property to evaluate")
        }
        let map = SurfelMap(positions: cloud.positions, normals: cloud.normals ?? [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: cloud.count),
                            radii: cloud.radius, confidences: cloud.confidence, colors: cloud.colors)
        var mapScore = SegmentationScore(classSet: classSet)
        var predictionScore = SegmentationScore(classSet: classSet)
        for position in Swift.stride(from: 0, to: source.frameCount, by: max(1, every)) {
            let frame = try source.frame(at: position)
            guard let rawTruth = frame.labels, let pose = frame.worldFromCamera else { continue }
            let truth = truthMapping.map { $0.map(rawTruth) } ?? rawTruth
            labelFrames += 1
            let render = SurfelRenderer().render(map, cameraFromWorld: pose.inverse, intrinsics: source.intrinsics)
            let predicted = try predictor?.predict(frame)?.probabilities.map {
                $0.argmax().resizedNearest(width: truth.width, height: truth.height)
            }
            for p in 0..<truth.count where truth.pixels[p] != ClassSet.ignoreLabel && render.surfel[p] >= 0 {
                let label = Int(labels[Int(render.surfel[p])])
                guard label >= 0 else { continue }
                mapScore.add(truth: Int(truth.pixels[p]), predicted: label)
                if let predicted, predicted.pixels[p] != ClassSet.ignoreLabel {
                    predictionScore.add(truth: Int(truth.pixels[p]), predicted: Int(predicted.pixels[p]))
                }
            }
        }
        self.mapScore = mapScore
        self.predictionScore = predictor == nil ? nil : predictionScore
    }
}

/// Depth-prediction accuracy against sensor depth with the standard monocular-depth metrics
/// (Eigen et al.): RMSE, mean absolute relative error and the δ < 1.25ᵏ accuracies, over pixels
/// where both depths are valid and the truth is within `maxDepth`.
public struct DepthScore: Sendable, CustomStringConvertible {
    public private(set) var pixels = 0
    public private(set) var frames = 0
    private var squaredError = 0.0
    private var absoluteRelative = 0.0
    private var withinDelta = [0, 0, 0]
    public var maxDepth: Float

    public init(maxDepth: Float = 10) { self.maxDepth = maxDepth }

    /// Adds one frame; `predicted` is resized (nearest) to the truth's size if they differ.
    public mutating func add(predicted: DepthImage, truth: DepthImage) {
        frames += 1
        let sameSize = predicted.width == truth.width && predicted.height == truth.height
        for y in 0..<truth.height {
            for x in 0..<truth.width {
                let g = truth[x, y]
                guard g.isFinite, g > 0, g <= maxDepth else { continue }
                let p = sameSize ? predicted[x, y]
                    : predicted[min(predicted.width - 1, x * predicted.width / truth.width), min(predicted.height - 1, y * predicted.height / truth.height)]
                guard p.isFinite, p > 0 else { continue }
                let e = Double(p - g)
                squaredError += e * e
                absoluteRelative += abs(e) / Double(g)
                let ratio = max(p / g, g / p)
                if ratio < 1.25 { withinDelta[0] += 1 }
                if ratio < 1.25 * 1.25 { withinDelta[1] += 1 }
                if ratio < 1.25 * 1.25 * 1.25 { withinDelta[2] += 1 }
                pixels += 1
            }
        }
    }

    public var rmse: Double? { pixels > 0 ? (squaredError / Double(pixels)).squareRoot() : nil }
    public var absRel: Double? { pixels > 0 ? absoluteRelative / Double(pixels) : nil }
    /// Fraction of pixels with max(p/g, g/p) < 1.25, 1.25², 1.25³.
    public var deltas: [Double]? { pixels > 0 ? withinDelta.map { Double($0) / Double(pixels) } : nil }

    public var description: String {
        guard let rmse, let absRel, let deltas else { return "depth: no pixel with both predicted and sensor depth" }
        return String(format: "depth on %d frames (%d pixels): RMSE %.3f m, abs-rel %.3f, δ<1.25 %.1f %%, δ<1.25² %.1f %%, δ<1.25³ %.1f %%",
                      frames, pixels, rmse, absRel, deltas[0] * 100, deltas[1] * 100, deltas[2] * 100)
    }
}

/// Geometry of a map against the sequence's measured depth: sensor depth of the evaluated
/// frames back-projected with the ground-truth poses is the reference surface. Accuracy is
/// each map point's distance to the nearest measured point; completeness each measured
/// point's distance to the nearest map point (both searched within `radius`; farther counts
/// as `radius`).
public struct MapGeometryScore: Sendable {
    public var accuracyMedian: Double, accuracyWithin2cm: Double, accuracyWithin5cm: Double
    public var completenessMedian: Double, completenessWithin2cm: Double, completenessWithin5cm: Double
    public var mapPoints: Int, measuredPoints: Int, frames: Int

    /// - Parameter triangles: when the map is a mesh, completeness is measured to its surface
    ///   (exact point-to-triangle distance within 2.5 cm, beyond that the nearest vertex's);
    ///   accuracy is measured from its vertices.
    public static func compute(map points: [SIMD3<Float>], triangles: [SIMD3<UInt32>]? = nil, source: FrameSource, every: Int, pixelStep: Int = 4,
                               maxDepth: Float = 3, radius: Float = 0.1) throws -> MapGeometryScore? {
        var measured: [SIMD3<Float>] = []
        var frames = 0
        let k = source.intrinsics
        for position in stride(from: 0, to: source.frameCount, by: max(1, every)) {
            let frame = try source.frame(at: position)
            guard let depth = frame.depth, let pose = frame.worldFromCamera else { continue }
            frames += 1
            for y in stride(from: 0, to: depth.height, by: pixelStep) {
                for x in stride(from: 0, to: depth.width, by: pixelStep) {
                    let z = depth.pixels[y * depth.width + x]
                    guard z > 0, z < maxDepth, z.isFinite else { continue }
                    let p = SIMD3<Double>((Double(x) - k.cx) / k.fx * Double(z), (Double(y) - k.cy) / k.fy * Double(z), Double(z))
                    let w = pose * p
                    measured.append(SIMD3<Float>(Float(w.x), Float(w.y), Float(w.z)))
                }
            }
        }
        guard !measured.isEmpty, !points.isEmpty else { return nil }
        let a = distances(from: points, to: measured, radius: radius)
        var c = distances(from: measured, to: points, radius: radius)
        if let triangles, !triangles.isEmpty {
            let exact = distances(from: measured, toTriangles: triangles, vertices: points, cell: 0.025)
            for i in c.indices where exact[i] < c[i] { c[i] = exact[i] }
        }
        func median(_ v: [Float]) -> Double { Double(v.sorted()[v.count / 2]) }
        func within(_ v: [Float], _ d: Float) -> Double { Double(v.filter { $0 <= d }.count) / Double(v.count) }
        return MapGeometryScore(accuracyMedian: median(a), accuracyWithin2cm: within(a, 0.02), accuracyWithin5cm: within(a, 0.05),
                                completenessMedian: median(c), completenessWithin2cm: within(c, 0.02), completenessWithin5cm: within(c, 0.05),
                                mapPoints: points.count, measuredPoints: measured.count, frames: frames)
    }

    /// What a raw depth frame scores as a map: the accuracy figure's floor set by the sensor.
    ///
    /// Every `heldOutEvery`-th frame in turn is left out of the reference (the samples `compute`
    /// uses: every `every`-th frame at every `pixelStep`-th pixel); its own depth, back-projected
    /// at every pixel, is the map, scored like any map's points against the other frames'
    /// samples. `thinned` keeps one of those points per cube of `thinVoxel` (the first in row
    /// order), spread evenly over the surface like a mesh's vertices, where the per-pixel points
    /// are densest where the camera is closest. Both pool the held-out frames' points.
    ///
    /// A map cannot be checked against the measured depth more finely than the measured depth
    /// agrees with itself: its noise, and the spacing of its samples, are in every figure.
    public struct DepthFloor: Sendable {
        public var perPixel: (median: Double, within2cm: Double, points: Int)
        public var thinned: (median: Double, within2cm: Double, points: Int)
        public var heldOutFrames: Int
    }

    public static func depthFloor(source: FrameSource, every: Int, heldOutEvery: Int = 10, thinVoxel: Float = 0.01,
                                  pixelStep: Int = 4, maxDepth: Float = 3, radius: Float = 0.1) throws -> DepthFloor? {
        let k = source.intrinsics
        func samples(_ position: Int, step: Int) throws -> [SIMD3<Float>] {
            let frame = try source.frame(at: position)
            guard let depth = frame.depth, let pose = frame.worldFromCamera else { return [] }
            var out: [SIMD3<Float>] = []
            for y in stride(from: 0, to: depth.height, by: step) {
                for x in stride(from: 0, to: depth.width, by: step) {
                    let z = depth.pixels[y * depth.width + x]
                    guard z > 0, z < maxDepth, z.isFinite else { continue }
                    let p = SIMD3<Double>((Double(x) - k.cx) / k.fx * Double(z), (Double(y) - k.cy) / k.fy * Double(z), Double(z))
                    let w = pose * p
                    out.append(SIMD3<Float>(Float(w.x), Float(w.y), Float(w.z)))
                }
            }
            return out
        }
        let referenceFrames = Array(stride(from: 0, to: source.frameCount, by: max(1, every)))
        var reference: [Int: [SIMD3<Float>]] = [:]
        for position in referenceFrames { reference[position] = try samples(position, step: pixelStep) }
        var perPixel: [Float] = [], thinned: [Float] = []
        var held = 0
        for h in stride(from: 0, to: source.frameCount, by: max(1, heldOutEvery)) {
            let map = try samples(h, step: 1)
            guard !map.isEmpty else { continue }
            let others = referenceFrames.filter { $0 != h }.flatMap { reference[$0] ?? [] }
            guard !others.isEmpty else { continue }
            held += 1
            perPixel += distances(from: map, to: others, radius: radius)
            var seen = Set<SIMD3<Int32>>()
            let sparse = map.filter { p in
                let q = (p / thinVoxel).rounded(.down)
                return seen.insert(SIMD3(Int32(clamping: Int(q.x)), Int32(clamping: Int(q.y)), Int32(clamping: Int(q.z)))).inserted
            }
            thinned += distances(from: sparse, to: others, radius: radius)
        }
        guard held > 0 else { return nil }
        func median(_ v: [Float]) -> Double { Double(v.sorted()[v.count / 2]) }
        func within(_ v: [Float], _ d: Float) -> Double { Double(v.filter { $0 <= d }.count) / Double(v.count) }
        return DepthFloor(perPixel: (median(perPixel), within(perPixel, 0.02), perPixel.count),
                          thinned: (median(thinned), within(thinned, 0.02), thinned.count), heldOutFrames: held)
    }

    /// Distance from each query to the nearest triangle among those in the 27 cells around it
    /// (so exact up to `cell`; +infinity when none is that close).
    static func distances(from queries: [SIMD3<Float>], toTriangles triangles: [SIMD3<UInt32>], vertices: [SIMD3<Float>],
                          cell: Float) -> [Float] {
        struct Cell: Hashable { var x: Int32, y: Int32, z: Int32 }
        func key(_ p: SIMD3<Float>) -> Cell {
            Cell(x: Int32(clamping: Int((p.x / cell).rounded(.down))), y: Int32(clamping: Int((p.y / cell).rounded(.down))),
                 z: Int32(clamping: Int((p.z / cell).rounded(.down))))
        }
        var grid: [Cell: [Int32]] = [:]
        for (t, f) in triangles.enumerated() {
            guard Int(max(f.x, f.y, f.z)) < vertices.count else { continue }
            let a = vertices[Int(f.x)], b = vertices[Int(f.y)], c = vertices[Int(f.z)]
            let lo = key(pointwiseMin(a, pointwiseMin(b, c))), hi = key(pointwiseMax(a, pointwiseMax(b, c)))
            // A triangle spanning many cells is not one of a mesh's; skip rather than flood.
            guard hi.x - lo.x <= 4, hi.y - lo.y <= 4, hi.z - lo.z <= 4, lo.x > Int32.min + 2, hi.x < Int32.max - 2 else { continue }
            for z in lo.z...hi.z { for y in lo.y...hi.y { for x in lo.x...hi.x { grid[Cell(x: x, y: y, z: z), default: []].append(Int32(t)) } } }
        }
        return queries.map { q in
            guard q.x.isFinite, q.y.isFinite, q.z.isFinite, abs(q.x) < 1e4, abs(q.y) < 1e4, abs(q.z) < 1e4 else { return .infinity }
            let c = key(q)
            var best = Float.infinity
            var seen = Set<Int32>()
            for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
                guard let list = grid[Cell(x: c.x + Int32(dx), y: c.y + Int32(dy), z: c.z + Int32(dz))] else { continue }
                for t in list where seen.insert(t).inserted {
                    let f = triangles[Int(t)]
                    let p = closestPoint(q, vertices[Int(f.x)], vertices[Int(f.y)], vertices[Int(f.z)])
                    let d = p - q
                    best = min(best, (d * d).sum())
                }
            } } }
            return best.squareRoot()
        }
    }

    /// The point of triangle abc nearest to p (Ericson, Real-Time Collision Detection 5.1.5).
    static func closestPoint(_ p: SIMD3<Float>, _ a: SIMD3<Float>, _ b: SIMD3<Float>, _ c: SIMD3<Float>) -> SIMD3<Float> {
        func dot(_ u: SIMD3<Float>, _ v: SIMD3<Float>) -> Float { (u * v).sum() }
        let ab = b - a, ac = c - a, ap = p - a
        let d1 = dot(ab, ap), d2 = dot(ac, ap)
        if d1 <= 0 && d2 <= 0 { return a }
        let bp = p - b
        let d3 = dot(ab, bp), d4 = dot(ac, bp)
        if d3 >= 0 && d4 <= d3 { return b }
        let vc = d1 * d4 - d3 * d2
        if vc <= 0 && d1 >= 0 && d3 <= 0 { return a + ab * (d1 / (d1 - d3)) }
        let cp = p - c
        let d5 = dot(ab, cp), d6 = dot(ac, cp)
        if d6 >= 0 && d5 <= d6 { return c }
        let vb = d5 * d2 - d1 * d6
        if vb <= 0 && d2 >= 0 && d6 <= 0 { return a + ac * (d2 / (d2 - d6)) }
        let va = d3 * d6 - d5 * d4
        if va <= 0 && (d4 - d3) >= 0 && (d5 - d6) >= 0 { return b + (c - b) * ((d4 - d3) / ((d4 - d3) + (d5 - d6))) }
        let denominator = va + vb + vc
        guard denominator != 0, denominator.isFinite else { return a }
        let v = vb / denominator, w = vc / denominator
        return a + ab * v + ac * w
    }

    /// Nearest-neighbour distances through a hash grid of `radius`-sized cells.
    static func distances(from queries: [SIMD3<Float>], to targets: [SIMD3<Float>], radius: Float) -> [Float] {
        struct Cell: Hashable { var x: Int32, y: Int32, z: Int32 }
        func cell(_ p: SIMD3<Float>) -> Cell {
            Cell(x: Int32((p.x / radius).rounded(.down)), y: Int32((p.y / radius).rounded(.down)), z: Int32((p.z / radius).rounded(.down)))
        }
        var grid: [Cell: [Int32]] = [:]
        for (i, p) in targets.enumerated() where p.x.isFinite && p.y.isFinite && p.z.isFinite && abs(p.x) < 1e4 && abs(p.y) < 1e4 && abs(p.z) < 1e4 {
            grid[cell(p), default: []].append(Int32(i))
        }
        return queries.map { q in
            guard q.x.isFinite, q.y.isFinite, q.z.isFinite, abs(q.x) < 1e4, abs(q.y) < 1e4, abs(q.z) < 1e4 else { return radius }
            let c = cell(q)
            var best = radius * radius
            for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
                guard let list = grid[Cell(x: c.x + Int32(dx), y: c.y + Int32(dy), z: c.z + Int32(dz))] else { continue }
                for i in list { let d = targets[Int(i)] - q; best = min(best, (d * d).sum()) }
            } } }
            return best.squareRoot()
        }
    }
}
