import Foundation
import Geometry
import Imaging
import Semantics

/// A procedural indoor room of boxes, each with an NYU-40 class and a procedural texture.
///
/// World frame: z up, floor at z = 0. Everything is analytic, so tests get exact ground truth:
/// ray casting for images, and the distance from any point to the nearest surface (and that
/// surface's class) for scoring maps.
public struct SyntheticScene: Sendable {
    /// Surface appearance as a function of the 3D point.
    public enum Texture: Sendable, Equatable {
        case plain(RGB8)
        /// Smooth blotches between two colours at the given scale (metres).
        case noise(RGB8, RGB8, scale: Double)
        /// Checkerboard tiles of the given size.
        case tiles(RGB8, RGB8, size: Double)
        /// Stripes along an axis (wood grain, book spines).
        case stripes(RGB8, RGB8, period: Double, axis: Int)
    }

    /// An oriented box: rotated by `yaw` about the vertical axis.
    public struct Box: Sendable {
        public var center: SIMD3<Double>
        public var halfExtents: SIMD3<Double>
        public var yaw: Double
        public var classId: Int
        public var texture: Texture
        /// The room: seen from inside, its faces are floor, ceiling and walls.
        public var isRoom: Bool

        public init(center: SIMD3<Double>, halfExtents: SIMD3<Double>, yaw: Double = 0, classId: Int,
                    texture: Texture, isRoom: Bool = false) {
            self.center = center; self.halfExtents = halfExtents; self.yaw = yaw
            self.classId = classId; self.texture = texture; self.isRoom = isRoom
        }

        @inline(__always) func toLocal(_ v: SIMD3<Double>) -> SIMD3<Double> {
            let c = cos(yaw), s = sin(yaw)
            return SIMD3(c * v.x + s * v.y, -s * v.x + c * v.y, v.z)
        }
        @inline(__always) func toWorld(_ v: SIMD3<Double>) -> SIMD3<Double> {
            let c = cos(yaw), s = sin(yaw)
            return SIMD3(c * v.x - s * v.y, s * v.x + c * v.y, v.z)
        }

        /// Signed distance (negative inside).
        func signedDistance(_ p: SIMD3<Double>) -> Double {
            let l = toLocal(p - center)
            let q = SIMD3(abs(l.x), abs(l.y), abs(l.z)) - halfExtents
            let outside = SIMD3(max(q.x, 0), max(q.y, 0), max(q.z, 0)).length
            return outside + min(max(q.x, max(q.y, q.z)), 0)
        }
    }

    /// A ray hit.
    public struct Hit: Sendable {
        public var distance: Double
        public var point: SIMD3<Double>
        public var normal: SIMD3<Double>
        public var classId: Int
        public var primitive: Int
    }

    public var boxes: [Box]
    public var light: SIMD3<Double>
    /// Room extents (interior).
    public var roomMin: SIMD3<Double>
    public var roomMax: SIMD3<Double>

    static func cls(_ name: String) -> Int {
        ClassSet.nyu40.index(named: name) ?? ClassSet.nyu40.index(named: "otherprop")!
    }

    /// The default living room: about 5 x 4 m, 2.6 m high.
    public static func livingRoom() -> SyntheticScene {
        var b: [Box] = []
        func add(_ c: SIMD3<Double>, _ h: SIMD3<Double>, _ name: String, _ t: Texture, yaw: Double = 0) {
            b.append(Box(center: c, halfExtents: h, yaw: yaw, classId: cls(name), texture: t))
        }
        let wood = Texture.stripes(RGB8(150, 100, 60), RGB8(120, 78, 45), period: 0.04, axis: 0)
        let darkWood = Texture.stripes(RGB8(95, 60, 40), RGB8(75, 48, 30), period: 0.03, axis: 1)
        // Room (walls, floor, ceiling from inside).
        b.append(Box(center: SIMD3(0, 0, 1.3), halfExtents: SIMD3(2.5, 2.0, 1.3), classId: cls("wall"),
                     texture: .noise(RGB8(205, 200, 185), RGB8(180, 172, 160), scale: 0.35), isRoom: true))
        // Table and two chairs.
        add(SIMD3(0.3, 0.2, 0.73), SIMD3(0.6, 0.4, 0.025), "table", wood)
        for (dx, dy) in [(-0.55, -0.35), (0.55, -0.35), (-0.55, 0.35), (0.55, 0.35)] {
            add(SIMD3(0.3 + dx, 0.2 + dy, 0.355), SIMD3(0.025, 0.025, 0.355), "table", darkWood)
        }
        for (x, y, yaw) in [(0.3, -0.45, 0.0), (-0.55, 0.25, Double.pi / 2)] {
            let chair = Texture.noise(RGB8(60, 90, 150), RGB8(40, 65, 120), scale: 0.08)
            let c = cos(yaw), s = sin(yaw)
            func at(_ lx: Double, _ ly: Double, _ z: Double) -> SIMD3<Double> { SIMD3(x + c * lx - s * ly, y + s * lx + c * ly, z) }
            add(at(0, 0, 0.46), SIMD3(0.22, 0.22, 0.025), "chair", chair, yaw: yaw)
            add(at(0, -0.2, 0.75), SIMD3(0.22, 0.02, 0.27), "chair", chair, yaw: yaw)
            for (lx, ly) in [(-0.19, -0.19), (0.19, -0.19), (-0.19, 0.19), (0.19, 0.19)] {
                add(at(lx, ly, 0.22), SIMD3(0.02, 0.02, 0.22), "chair", darkWood, yaw: yaw)
            }
        }
        // Sofa against the y = -2 wall, with a pillow.
        let fabric = Texture.noise(RGB8(170, 60, 55), RGB8(140, 45, 45), scale: 0.1)
        add(SIMD3(-0.9, -1.52, 0.22), SIMD3(1.0, 0.45, 0.22), "sofa", fabric)
        add(SIMD3(-0.9, -1.88, 0.62), SIMD3(1.0, 0.1, 0.3), "sofa", fabric)
        add(SIMD3(-1.98, -1.52, 0.5), SIMD3(0.1, 0.45, 0.14), "sofa", fabric)
        add(SIMD3(0.18, -1.52, 0.5), SIMD3(0.1, 0.45, 0.14), "sofa", fabric)
        add(SIMD3(-1.5, -1.6, 0.55), SIMD3(0.25, 0.1, 0.15), "pillow", .plain(RGB8(230, 200, 90)), yaw: 0.1)
        // Bookshelf against the x = 2.5 wall: panels, shelves and books.
        let shelfX = 2.3
        add(SIMD3(2.48, 1.0, 0.95), SIMD3(0.02, 0.55, 0.95), "bookshelf", darkWood)
        add(SIMD3(shelfX, 0.43, 0.95), SIMD3(0.2, 0.02, 0.95), "bookshelf", darkWood)
        add(SIMD3(shelfX, 1.57, 0.95), SIMD3(0.2, 0.02, 0.95), "bookshelf", darkWood)
        for k in 0..<5 {
            let z = 0.05 + Double(k) * 0.45
            add(SIMD3(shelfX, 1.0, z), SIMD3(0.2, 0.55, 0.02), "bookshelf", darkWood)
            guard k < 4 else { continue }
            var y = 0.5
            var n: UInt64 = UInt64(k) * 31
            while y < 1.45 {
                n += 1
                let w = 0.02 + 0.03 * SyntheticNoise.uniform(7, n)
                let h = 0.14 + 0.12 * SyntheticNoise.uniform(8, n)
                let color = RGB8(UInt8(60 + 180 * SyntheticNoise.uniform(9, n)), UInt8(40 + 150 * SyntheticNoise.uniform(10, n)),
                                 UInt8(40 + 170 * SyntheticNoise.uniform(11, n)))
                add(SIMD3(shelfX + 0.02, y + w, z + 0.02 + h / 2), SIMD3(0.15, w, h / 2), "books",
                    .stripes(color, RGB8(color.r / 2, color.g / 2, color.b / 2), period: 0.05, axis: 2))
                y += 2 * w + 0.005
            }
        }
        // Cabinet with a television on it, against the x = -2.5 wall.
        add(SIMD3(-2.22, 0.6, 0.4), SIMD3(0.28, 0.6, 0.4), "cabinet", .stripes(RGB8(210, 205, 195), RGB8(190, 185, 175), period: 0.3, axis: 1))
        add(SIMD3(-2.38, 0.6, 1.12), SIMD3(0.04, 0.5, 0.3), "television", .noise(RGB8(25, 25, 30), RGB8(50, 55, 70), scale: 0.05))
        // Pictures, door and window on the walls (slightly proud of the wall).
        add(SIMD3(-0.2, 1.985, 1.55), SIMD3(0.45, 0.015, 0.3), "picture", .noise(RGB8(40, 130, 70), RGB8(220, 190, 60), scale: 0.07))
        add(SIMD3(1.3, -1.985, 1.5), SIMD3(0.35, 0.015, 0.25), "picture", .tiles(RGB8(30, 60, 160), RGB8(240, 240, 240), size: 0.1))
        add(SIMD3(-2.485, -0.9, 1.6), SIMD3(0.015, 0.3, 0.22), "picture", .noise(RGB8(150, 40, 120), RGB8(250, 150, 60), scale: 0.05))
        add(SIMD3(1.4, 1.98, 1.0), SIMD3(0.45, 0.02, 1.0), "door", .stripes(RGB8(170, 120, 80), RGB8(150, 105, 70), period: 0.08, axis: 2))
        add(SIMD3(2.48, -0.9, 1.5), SIMD3(0.02, 0.6, 0.5), "window", .tiles(RGB8(170, 210, 240), RGB8(240, 245, 250), size: 0.25))
        // Floor lamp and a box on the floor.
        add(SIMD3(2.15, -1.7, 0.02), SIMD3(0.15, 0.15, 0.02), "lamp", .plain(RGB8(40, 40, 40)))
        add(SIMD3(2.15, -1.7, 0.8), SIMD3(0.015, 0.015, 0.78), "lamp", .plain(RGB8(60, 60, 60)))
        add(SIMD3(2.15, -1.7, 1.65), SIMD3(0.18, 0.18, 0.12), "lamp", .plain(RGB8(245, 235, 200)))
        add(SIMD3(1.2, -0.9, 0.15), SIMD3(0.2, 0.15, 0.15), "box", .tiles(RGB8(190, 150, 100), RGB8(170, 130, 85), size: 0.06), yaw: 0.4)
        return SyntheticScene(boxes: b, light: SIMD3(0.2, 0.1, 2.4), roomMin: SIMD3(-2.5, -2, 0), roomMax: SIMD3(2.5, 2, 2.6))
    }

    /// Class of a room face from its inward normal.
    func roomClass(normal: SIMD3<Double>) -> Int {
        if normal.z > 0.5 { return Self.cls("floor") }
        if normal.z < -0.5 { return Self.cls("ceiling") }
        return Self.cls("wall")
    }

    /// Nearest surface hit along a ray (direction need not be unit; `distance` is in its units).
    public func raycast(origin: SIMD3<Double>, direction: SIMD3<Double>) -> Hit? {
        var best: Hit?
        var bestT = Double.infinity
        for (index, box) in boxes.enumerated() {
            let o = box.toLocal(origin - box.center), d = box.toLocal(direction)
            var tNear = -Double.infinity, tFar = Double.infinity
            var nearAxis = 0, farAxis = 0
            var miss = false
            for a in 0..<3 {
                if abs(d[a]) < 1e-12 {
                    if abs(o[a]) > box.halfExtents[a] { miss = true; break }
                    continue
                }
                var t1 = (-box.halfExtents[a] - o[a]) / d[a], t2 = (box.halfExtents[a] - o[a]) / d[a]
                if t1 > t2 { swap(&t1, &t2) }
                if t1 > tNear { tNear = t1; nearAxis = a }
                if t2 < tFar { tFar = t2; farAxis = a }
            }
            if miss || tNear > tFar { continue }
            let t: Double, axis: Int
            if box.isRoom { t = tFar; axis = farAxis } else { t = tNear; axis = nearAxis }
            guard t > 1e-9, t < bestT else { continue }
            let local = o + d * t
            var n = SIMD3<Double>.zero
            n[axis] = local[axis] > 0 ? 1 : -1
            if box.isRoom { n = -n }
            let normal = box.toWorld(n)
            bestT = t
            best = Hit(distance: t, point: origin + direction * t, normal: normal,
                       classId: box.isRoom ? roomClass(normal: normal) : box.classId, primitive: index)
        }
        return best
    }

    /// Unsigned distance from `p` to the nearest surface, and that surface's class.
    public func distanceToSurface(_ p: SIMD3<Double>) -> (distance: Double, classId: Int) {
        var best = Double.infinity
        var cls = -1
        for box in boxes {
            let d = abs(box.signedDistance(p))
            if d < best {
                best = d
                if box.isRoom {
                    // Nearest room face decides floor/ceiling/wall.
                    let q = box.toLocal(p - box.center), h = box.halfExtents
                    let gaps = [h.x - abs(q.x), h.y - abs(q.y), h.z - q.z, h.z + q.z]
                    let k = gaps.indices.min { gaps[$0] < gaps[$1] }!
                    cls = k == 2 ? Self.cls("ceiling") : (k == 3 ? Self.cls("floor") : Self.cls("wall"))
                } else {
                    cls = box.classId
                }
            }
        }
        return (best, cls)
    }

    /// Light leaving a hit towards the camera, 0-255 per channel: its albedo lit by the room's
    /// point light (Lambertian, with an ambient floor and a distance falloff).
    public func radiance(_ hit: Hit) -> SIMD3<Double> {
        let toLight = light - hit.point
        let lambert = max(0, hit.normal.dot(toLight.normalized))
        let falloff = min(1, 6 / max(1e-6, toLight.dot(toLight)))
        let shade = 0.4 + 0.6 * lambert * falloff
        return albedo(hit) * shade * 255
    }

    /// Surface colour of a hit.
    public func albedo(_ hit: Hit) -> SIMD3<Double> {
        let box = boxes[hit.primitive]
        var texture = box.texture
        if box.isRoom {
            if hit.normal.z > 0.5 { texture = .tiles(RGB8(165, 130, 95), RGB8(140, 105, 75), size: 0.5) }
            else if hit.normal.z < -0.5 { texture = .plain(RGB8(235, 235, 232)) }
        }
        let p = box.toLocal(hit.point - box.center)
        func rgb(_ c: RGB8) -> SIMD3<Double> { SIMD3(Double(c.r), Double(c.g), Double(c.b)) / 255 }
        // Project onto the face plane for 2D patterns.
        let n = box.toLocal(hit.normal)
        let (u, v): (Double, Double) = abs(n.x) > 0.5 ? (p.y, p.z) : (abs(n.y) > 0.5 ? (p.x, p.z) : (p.x, p.y))
        let seed = UInt64(hit.primitive) &* 977
        switch texture {
        case .plain(let c):
            return rgb(c) * (0.93 + 0.07 * SyntheticNoise.value(u * 20, v * 20, seed: seed))
        case .noise(let a, let b, let scale):
            let t = SyntheticNoise.fractal(u / scale, v / scale, seed: seed)
            return rgb(a) * (1 - t) + rgb(b) * t
        case .tiles(let a, let b, let size):
            let k = (Int(floor(u / size)) + Int(floor(v / size))) & 1
            let grout = min(abs(u / size - (u / size).rounded()), abs(v / size - (v / size).rounded())) < 0.03
            return grout ? rgb(a) * 0.6 : (k == 0 ? rgb(a) : rgb(b)) * (0.92 + 0.08 * SyntheticNoise.value(u * 9, v * 9, seed: seed))
        case .stripes(let a, let b, let period, let axis):
            let coordinate = axis == 2 ? p.z : (axis == 1 ? p.y : p.x)
            let t = 0.5 + 0.5 * sin(2 * .pi * coordinate / period + 3 * SyntheticNoise.value(u * 4, v * 4, seed: seed))
            return rgb(a) * (1 - t) + rgb(b) * t
        }
    }
}

extension SyntheticScene {
    /// How well points (and their labels) match the true scene.
    public struct MapScore: Sendable {
        public var medianDistance: Double
        public var p90Distance: Double
        /// Fraction of labelled points whose label is the class of the nearest true surface.
        public var labelAccuracy: Double?
        public var labelledCount: Int
    }

    /// Scores points against the scene: distance to the nearest true surface, and labels
    /// (-1 = none) against that surface's class (mapped through `classMap`, e.g. NYU-40 → NYU-13,
    /// when the labels use another class set).
    public func score(positions: [SIMD3<Float>], labels: [Int32]?, classMap: [Int]? = nil) -> MapScore? {
        guard !positions.isEmpty else { return nil }
        var distances: [Double] = []
        distances.reserveCapacity(positions.count)
        var correct = 0, labelled = 0
        for (i, p) in positions.enumerated() {
            let truth = distanceToSurface(SIMD3<Double>(p))
            distances.append(truth.distance)
            if let labels, labels[i] >= 0 {
                labelled += 1
                let expected = classMap.map { $0[truth.classId] } ?? truth.classId
                if Int(labels[i]) == expected { correct += 1 }
            }
        }
        distances.sort()
        return MapScore(medianDistance: distances[distances.count / 2], p90Distance: distances[distances.count * 9 / 10],
                        labelAccuracy: labelled > 0 ? Double(correct) / Double(labelled) : nil, labelledCount: labelled)
    }
}
