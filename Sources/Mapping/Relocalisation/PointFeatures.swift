import Foundation
import Geometry
import Imaging

/// Surface-shape descriptors of one depth frame, for registering two views whose images differ
/// too much for image corners to match: a camera that was lost while it moved half a metre, and
/// sees the old surface from further away, at another scale, or where the surface has little
/// texture.
///
/// The frame is sampled on a coarse pixel grid, thinned to one oriented point per voxel, and
/// each point gets a fast point feature histogram (FPFH, Rusu et al., "Fast Point Feature
/// Histograms (FPFH) for 3D Registration", 2009): the angles between its normal and its
/// neighbours' within `featureRadius`, in three 11-bin histograms, blended with the neighbours'
/// own histograms by inverse distance. The angles do not depend on the viewpoint or on the
/// image's scale, only on the surface's shape, so matched histograms propose point pairs in
/// metric space, which RANSAC turns into a rigid motion.
public struct PointFeatureSet: Sendable {
    /// Camera-frame positions (metres), one per occupied voxel.
    public var points: [SIMD3<Float>] = []
    /// The histograms, `PointFeatureSet.stride` floats per point (33 bins and 7 zeros of
    /// padding); each of the three 11-bin parts sums to 100.
    public var histograms: [Float] = []
    public var count: Int { points.count }
    public static let bins = 33
    public static let stride = 40
    public init() {}
}

/// A frame thinned to one oriented point per voxel (camera frame): what `PointFeatureExtractor`
/// describes. A keyframe keeps these (2,100-2,500 points on the 7-Scenes kitchen) and its
/// histograms are computed only when a lost frame is registered to it.
public struct OrientedPoints: Sendable {
    public var points: [SIMD3<Float>] = []
    public var normals: [SIMD3<Float>] = []
    public var count: Int { points.count }
    public init() {}
    /// `normals` are unit length, one per point.
    public init(points: [SIMD3<Float>], normals: [SIMD3<Float>]) {
        self.points = points
        self.normals = normals
    }
}

public struct PointFeatureExtractor: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Edge of the voxels the frame is thinned to (metres).
        public var voxel: Float = 0.05
        /// Neighbours within this distance shape a point's histogram (metres).
        public var featureRadius: Float = 0.25
        /// Points with fewer neighbours than this get no histogram (too little shape to describe).
        public var minimumNeighbours = 8
        /// The frame is sampled on a grid of about this many columns (every n-th pixel).
        public var gridColumns = 160
        /// Normals from the samples this many grid steps to either side: one step is noisy on
        /// sensor depth (on the synthetic room's noisy depth, views 27 cm apart registered 8 cm
        /// off with one step and 5 cm with two; on the kitchen two relocalised sooner), and
        /// three steps reach across too many edges.
        public var normalSpan = 2
        /// Depth range of the points used (metres).
        public var depthRange: ClosedRange<Float> = 0.3...5
        /// At most this many points (an even subsample of the voxels beyond it).
        public var maximumPoints = 3000
        public init() {}
    }

    public let parameters: Parameters

    public init(parameters: Parameters = Parameters()) {
        self.parameters = parameters
    }

    /// Oriented points and histograms of `depth` (metres), back-projected with `intrinsics`.
    public func extract(depth: DepthImage, intrinsics: Intrinsics) -> PointFeatureSet {
        describe(orientedPoints(depth: depth, intrinsics: intrinsics))
    }

    /// Grid samples with normals from their grid neighbours `normalSpan` steps away (none
    /// across a depth edge), averaged per voxel; at most `maximumPoints` voxels, evenly spread
    /// over the order they were met in.
    public func orientedPoints(depth: DepthImage, intrinsics: Intrinsics) -> OrientedPoints {
        let w = depth.width, h = depth.height
        let step = max(1, w / max(parameters.gridColumns, 1))
        let span = step * max(parameters.normalSpan, 1)
        guard w > 2 * span, h > 2 * span, depth.pixels.count == w * h, parameters.voxel > 0, parameters.voxel.isFinite else { return OrientedPoints() }
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        func point(_ x: Int, _ y: Int) -> SIMD3<Float>? {
            let z = depth.pixels[y * w + x]
            guard parameters.depthRange.contains(z) else { return nil }
            return SIMD3((Float(x) - cx) / fx * z, (Float(y) - cy) / fy * z, z)
        }
        var voxels = VoxelAverages(voxel: parameters.voxel)
        for y in Swift.stride(from: span, to: h - span, by: step) {
            for x in Swift.stride(from: span, to: w - span, by: step) {
                guard let p = point(x, y), let l = point(x - span, y), let r = point(x + span, y),
                      let u = point(x, y - span), let d = point(x, y + span) else { continue }
                // Across a depth edge the neighbours belong to another surface.
                let edge = 0.05 * p.z
                guard abs(l.z - p.z) < edge, abs(r.z - p.z) < edge, abs(u.z - p.z) < edge, abs(d.z - p.z) < edge else { continue }
                var n = (r - l).cross(d - u)
                let length = n.length
                guard length > 0, length.isFinite else { continue }
                n /= length
                if n.dot(p) > 0 { n = -n }
                voxels.add(p, normal: n)
            }
        }
        return voxels.averages(maximumPoints: parameters.maximumPoints)
    }

    /// FPFH of each point with enough neighbours; the others are left out.
    public func describe(_ oriented: OrientedPoints) -> PointFeatureSet {
        let points = oriented.points, normals = oriented.normals
        let r = parameters.featureRadius, r2 = r * r
        var result = PointFeatureSet()
        guard points.count == normals.count, r > 0, r.isFinite else { return result }
        // Neighbours through a hash grid of radius-sized cells.
        // Points whose cell index would not fit (not finite, or absurdly far) take no part.
        var cells: [SIMD3<Int32>: [Int32]] = [:]
        for (i, p) in points.enumerated() { if let c = Self.cell(of: p, size: r) { cells[c, default: []].append(Int32(i)) } }
        var neighbours = [[Int32]](repeating: [], count: points.count)
        for (i, p) in points.enumerated() {
            guard let c = Self.cell(of: p, size: r) else { continue }
            for dz: Int32 in -1...1 { for dy: Int32 in -1...1 { for dx: Int32 in -1...1 {
                guard let list = cells[c &+ SIMD3(dx, dy, dz)] else { continue }
                for j in list where Int(j) != i {
                    let d = points[Int(j)] - p
                    if (d * d).sum() <= r2 { neighbours[i].append(j) }
                }
            }}}
        }
        // Simplified histograms (SPFH): the pair angles of each point with its own neighbours.
        let bins = PointFeatureSet.bins
        var simple = [Float](repeating: 0, count: points.count * bins)
        for i in points.indices where neighbours[i].count >= parameters.minimumNeighbours {
            let share = 100 / Float(neighbours[i].count)
            for j in neighbours[i] {
                guard let f = Self.pairFeatures(points[i], normals[i], points[Int(j)], normals[Int(j)]) else { continue }
                simple[i * bins + Self.bin(f.theta, -Float.pi, Float.pi)] += share
                simple[i * bins + 11 + Self.bin(f.alpha, -1, 1)] += share
                simple[i * bins + 22 + Self.bin(f.phi, -1, 1)] += share
            }
        }
        // FPFH: the point's own SPFH plus its neighbours' weighted by inverse distance, each part
        // scaled back to a sum of 100.
        let stride = PointFeatureSet.stride
        for i in points.indices where neighbours[i].count >= parameters.minimumNeighbours {
            var h = [Float](repeating: 0, count: bins)
            var weightSum: Float = 0
            for j in neighbours[i] where neighbours[Int(j)].count >= parameters.minimumNeighbours {
                let d = (points[Int(j)] - points[i]).length
                let weight = 1 / max(d, 1e-4)
                weightSum += weight
                for b in 0..<bins { h[b] += weight * simple[Int(j) * bins + b] }
            }
            guard weightSum > 0 else { continue }
            var row = [Float](repeating: 0, count: stride)
            for part in 0..<3 {
                var total: Float = 0
                for b in (part * 11)..<(part * 11 + 11) {
                    row[b] = simple[i * bins + b] + h[b] / weightSum
                    total += row[b]
                }
                guard total > 0 else { continue }
                for b in (part * 11)..<(part * 11 + 11) { row[b] *= 100 / total }
            }
            result.points.append(points[i])
            result.histograms += row
        }
        return result
    }

    /// The grid cell of edge `size` holding `p`, or nil when its index would not fit in Int32
    /// (a coordinate that is not finite, or absurdly far).
    static func cell(of p: SIMD3<Float>, size: Float) -> SIMD3<Int32>? {
        let c = p / size, limit = Float(Int32.max / 2)
        guard abs(c.x) < limit, abs(c.y) < limit, abs(c.z) < limit else { return nil }
        return SIMD3(Int32(c.x.rounded(.down)), Int32(c.y.rounded(.down)), Int32(c.z.rounded(.down)))
    }

    /// The Darboux-frame angles of a point pair (PCL's computePairFeatures): the frame sits on
    /// the point whose normal makes the smaller angle with the line joining them.
    static func pairFeatures(_ p1: SIMD3<Float>, _ n1: SIMD3<Float>, _ p2: SIMD3<Float>, _ n2: SIMD3<Float>)
        -> (theta: Float, alpha: Float, phi: Float)? {
        var dp = p2 - p1
        let distance = dp.length
        guard distance > 0 else { return nil }
        dp /= distance
        var u = n1, target = n2, phi = n1.dot(dp)
        if abs(n1.dot(dp)) < abs(n2.dot(dp)) {
            u = n2; target = n1; dp = -dp; phi = n2.dot(dp)
        }
        var v = dp.cross(u)
        let vLength = v.length
        guard vLength > 1e-6 else { return nil }
        v /= vLength
        let w = u.cross(v)
        return (theta: atan2f(w.dot(target), u.dot(target)), alpha: v.dot(target), phi: phi)
    }

    static func bin(_ value: Float, _ low: Float, _ high: Float) -> Int {
        guard value.isFinite else { return 0 }
        return min(10, max(0, Int((value - low) / (high - low) * 11)))
    }

    /// Mutual nearest histograms (Euclidean): pairs (index in a, index in b), in the order of a.
    /// The rows of `a` are split over `threads`; the result does not depend on the count.
    public static func match(_ a: PointFeatureSet, _ b: PointFeatureSet, threads: Int = 1) -> [(Int, Int)] {
        let na = a.count, nb = b.count, stride = PointFeatureSet.stride
        guard na > 0, nb > 0, a.histograms.count == na * stride, b.histograms.count == nb * stride else { return [] }
        typealias Best = (distance: Float, index: Int)
        var bestForA = [Best](repeating: (.infinity, -1), count: na)
        let chunks = max(1, min(threads, na / 64 + 1))
        var bestForBByChunk = [[Best]](repeating: [], count: chunks)
        a.histograms.withUnsafeBufferPointer { ha in
            b.histograms.withUnsafeBufferPointer { hb in
                bestForA.withUnsafeMutableBufferPointer { bestA in
                    let pa = UnsafeRawPointer(ha.baseAddress!), pb = UnsafeRawPointer(hb.baseAddress!)
                    let outA = bestA.baseAddress!
                    let rowBytes = stride * MemoryLayout<Float>.stride, laneBytes = 8 * MemoryLayout<Float>.stride
                    let lock = NSLock()
                    ParallelFor.run(na, chunks: chunks, threads: threads) { chunk, rows in
                        var bestB = [Best](repeating: (.infinity, -1), count: nb)
                        for i in rows {
                            let a0 = pa.loadUnaligned(fromByteOffset: i * rowBytes, as: SIMD8<Float>.self)
                            let a1 = pa.loadUnaligned(fromByteOffset: i * rowBytes + laneBytes, as: SIMD8<Float>.self)
                            let a2 = pa.loadUnaligned(fromByteOffset: i * rowBytes + 2 * laneBytes, as: SIMD8<Float>.self)
                            let a3 = pa.loadUnaligned(fromByteOffset: i * rowBytes + 3 * laneBytes, as: SIMD8<Float>.self)
                            let a4 = pa.loadUnaligned(fromByteOffset: i * rowBytes + 4 * laneBytes, as: SIMD8<Float>.self)
                            var best: Best = (.infinity, -1)
                            for j in 0..<nb {
                                let o = j * rowBytes
                                let d0 = a0 - pb.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                                let d1 = a1 - pb.loadUnaligned(fromByteOffset: o + laneBytes, as: SIMD8<Float>.self)
                                let d2 = a2 - pb.loadUnaligned(fromByteOffset: o + 2 * laneBytes, as: SIMD8<Float>.self)
                                let d3 = a3 - pb.loadUnaligned(fromByteOffset: o + 3 * laneBytes, as: SIMD8<Float>.self)
                                let d4 = a4 - pb.loadUnaligned(fromByteOffset: o + 4 * laneBytes, as: SIMD8<Float>.self)
                                var sum = d0 * d0
                                sum += d1 * d1; sum += d2 * d2; sum += d3 * d3; sum += d4 * d4
                                let distance = sum.sum()
                                if distance < best.distance { best = (distance, j) }
                                if distance < bestB[j].distance { bestB[j] = (distance, i) }
                            }
                            outA[i] = best
                        }
                        lock.lock(); bestForBByChunk[chunk] = bestB; lock.unlock()
                    }
                }
            }
        }
        // Chunks in order, the earlier row winning a tie, as one thread would have it.
        var bestForB = [Best](repeating: (.infinity, -1), count: nb)
        for partial in bestForBByChunk where partial.count == nb {
            for j in 0..<nb where partial[j].distance < bestForB[j].distance { bestForB[j] = partial[j] }
        }
        return (0..<na).compactMap { i in
            let j = bestForA[i].index
            return j >= 0 && bestForB[j].index == i ? (i, j) : nil
        }
    }
}

extension PointFeatureExtractor {
    /// A surfel map thinned to one oriented point per voxel (the mean position and normal of
    /// its surfels of at least `minimumConfidence`), at most `maximumPoints` of them, evenly
    /// spread: the whole of a map's surface, to register one map to another by shape.
    public func orientedPoints(map: SurfelMap, minimumConfidence: Float, maximumPoints: Int) -> OrientedPoints {
        var voxels = VoxelAverages(voxel: parameters.voxel)
        let positions = map.positions, normals = map.normals, confidences = map.confidences
        for i in positions.indices where confidences[i] >= minimumConfidence { voxels.add(positions[i], normal: normals[i]) }
        return voxels.averages(maximumPoints: maximumPoints)
    }

    /// Oriented points summed per voxel, in the order the voxels were first met.
    struct VoxelAverages {
        let voxel: Float
        var sums: [(point: SIMD3<Float>, normal: SIMD3<Float>, count: Float)] = []
        var index: [SIMD3<Int32>: Int] = [:]
        init(voxel: Float) { self.voxel = voxel }

        mutating func add(_ p: SIMD3<Float>, normal n: SIMD3<Float>) {
            guard let key = PointFeatureExtractor.cell(of: p, size: voxel) else { return }
            if let k = index[key] {
                sums[k].point += p; sums[k].normal += n; sums[k].count += 1
            } else {
                index[key] = sums.count
                sums.append((p, n, 1))
            }
        }

        /// The mean point and normal of each voxel, at most `maximumPoints` of them, evenly
        /// spread over the order the voxels were met in.
        func averages(maximumPoints: Int) -> OrientedPoints {
            var result = OrientedPoints()
            let keep = sums.isEmpty ? 1 : (sums.count - 1) / max(maximumPoints, 1) + 1
            for (k, s) in sums.enumerated() where k % keep == 0 {
                let n = s.normal / s.count
                // Normals that disagree within a voxel (a corner, noise) average to a short vector.
                guard n.length > 0.5 else { continue }
                result.points.append(s.point / s.count)
                result.normals.append(n / n.length)
            }
            return result
        }
    }
}
