import Foundation
import Geometry
import Imaging

/// Parameters of ElasticFusion's loop closure by map deformation (reference notes §4).
public struct LoopClosureParameters: Sendable, Equatable {
    /// A registration is tried only when the inactive model covers at least this fraction of a
    /// 32x24 grid of pixels in the current view (less overlap cannot constrain a pose).
    public var minInactiveCoverage = 0.15
    /// Acceptance of the model-to-model registration: inliers at least this fraction of the
    /// image's pixels. ElasticFusion asks for 35,000 of 640x480 (11 %); on the 7-Scenes kitchen
    /// the old surface that comes back into view overlaps the active model on 8-15 % of the
    /// pixels, with 4-7 % inliers, so 11 % would never close there. The overlap test below
    /// carries the weight instead.
    public var minInlierFraction = 0.03
    /// Acceptance: inliers at least this fraction of the pixels where both models are seen.
    public var minOverlapInliers = 0.4
    /// Acceptance: RMS point-to-plane residual of the registration (metres).
    public var maxResidual = 0.01
    /// Acceptance: conditioning of the registration's normal equations (min/max LDLT pivot);
    /// stricter than tracking's, since a loop closure bends the whole map.
    public var minConditioning = 1e-5
    /// Corrections larger than this are not trusted (metres, degrees): ICP does not converge
    /// from that far, so such a "match" is more likely a wrong one.
    public var maxCorrection = 0.3
    public var maxCorrectionDegrees = 20.0
    /// The same for a global closure: there a keypoint registration to an old keyframe brings
    /// ICP within reach, and ICP against the old surface verifies it, so it may correct more.
    public var maxGlobalCorrection = 0.5
    public var maxGlobalCorrectionDegrees = 30.0
    /// Once the camera has been found consistent with old surface (a closure, or old surface
    /// found in agreement), a later correction may be at most this (metres, degrees) plus the
    /// growth below per frame since: drift builds up over tracked frames, so a large correction
    /// soon after a consistent one is a wrong match (repeated structure such as a row of
    /// cupboard doors), not drift. On the kitchen played forwards and back, a global closure 15
    /// frames after another "corrected" 288 mm and 12.4 deg and took the ATE from 26 to 103 mm.
    /// The growth is about four times the fastest drift measured (the kitchen's frames 0-499
    /// drift 0.12 mm a frame while exploring); the 25 mm floor covers correct closures soon
    /// after another (20-31 mm at 15-18 frames on the kitchen played forwards and back). A
    /// looser 5 cm + 2 mm a frame let through local matches that slide along a wall, 67-146 mm
    /// 56 frames after a closure, in four of nine runs of a synthetic 960-frame loop.
    /// Until the first consistency, `maxCorrection` and `maxGlobalCorrection` alone apply.
    public var driftAllowance = 0.025
    public var driftAllowanceDegrees = 2.0
    public var driftPerFrame = 0.0005
    public var driftDegreesPerFrame = 0.1
    /// Before a registration bends the map, it is run again from this fraction of its own
    /// answer, and must end within `restartTolerance` of its correction (at least
    /// `restartFloor` metres and `restartFloorDegrees`) of where it ended the first time. A true
    /// alignment is a minimum ICP comes back to from anywhere on the way; a match on repeated
    /// or weakly constraining structure is where the iterations happened to stop, and a second
    /// start ends elsewhere. On the kitchen played forwards and back, correct closures came
    /// back to within 0.5 mm, the wrong ones (89 and 51 mm corrections) ended 112 and 237 mm
    /// away. 0 turns the check off.
    public var restartFraction = 0.5
    public var restartTolerance = 0.25
    public var restartFloor = 0.005
    public var restartFloorDegrees = 0.25
    /// A global closure registers to the old surface made up to this many frames after its
    /// keyframe (`attempt(madeBy:)`).
    public var keyframeSurfaceFrames = 20
    /// Corrections smaller than this do not bend the map: the inactive surface already agrees
    /// with the active one, and is only made active again.
    public var minCorrection = 0.002
    public var minCorrectionDegrees = 0.2
    /// Deformation graph: one node per this many surfels, in creation order (ElasticFusion
    /// samples every 5000th), within these bounds.
    public var surfelsPerNode = 5000
    public var minNodes = 160
    public var maxNodes = 1024
    /// A surfel (or camera) is influenced by the nearest nodes among this many nodes nearest to
    /// it in time (ElasticFusion: 20), so surface made long ago moves with the nodes of its time.
    public var temporalCandidates = 20
    /// A camera of the trajectory moves with the rigid fit of the nodes made within this many
    /// frames before and after it (at least the `temporalCandidates` · 2/5 nearest in time).
    public var cameraWindow = 40
    /// Constraints are sampled on this grid of the view (ElasticFusion: 32x24).
    public var gridColumns = 32
    public var gridRows = 24
    /// A closure needs at least this many grid points on recent surface (made within the active
    /// window) and as many on the old surface.
    public var minConstraints = 8
    /// A deformation is rejected when the constraints' RMS error after optimisation exceeds
    /// this (metres), or when it removes less than half of the error before.
    public var maxDeformationResidual = 0.01
    /// After a closure, stable inactive surfels in view no more than this behind the rendered
    /// surface are made active again (ElasticFusion: 0.1 m).
    public var reactivationDepth: Float = 0.1
    public var graph = DeformationGraph.Parameters()
    public init() {}
}

/// One loop closure: what was registered and how the map was bent.
public struct LoopClosureReport: Sendable {
    public enum Kind: String, Sendable {
        /// The active model registered to the inactive model rendered from the current pose.
        case local
        /// The current frame registered to a keyframe found by appearance (randomised ferns).
        case global
    }
    public var kind: Kind
    /// Map time (fused frames so far) when it happened.
    public var tick: Int
    /// Surface constraints (active points pulled to where the registration puts them) and pins
    /// (inactive points held in place).
    public var constraints: Int
    public var pins: Int
    /// RMS distance of the constraint points from their targets before and after (metres).
    public var residualBefore: Double
    public var residualAfter: Double
    /// How far the registration moved the current camera (metres, degrees).
    public var correctionMetres: Double
    public var correctionDegrees: Double
    public var nodes: Int
    /// The registration: inliers, pixels where both models were rendered, its conditioning.
    public var inliers: Int
    public var overlap: Int
    public var conditioning: Double
    /// Surfels made active again after the closure.
    public var reactivated: Int
    public var seconds: Double
    /// A global closure's keyframe (its sequence position).
    public var keyframePosition: Int? = nil
}

/// The bend of one loop closure, for everything that has a time and a position in the map's
/// frame: the trajectory's camera poses and the relocaliser's keyframes.
public struct MapDeformation: Sendable {
    public let graph: DeformationGraph
    /// Creation time of each node's surfel, ascending (the graph's node order).
    let nodeTimes: [Int32]
    let temporalCandidates: Int
    /// Nodes nearest in time whose motion moves a camera (fewer than a surfel's candidates: a
    /// camera moves with what it saw then, not with what was made many frames around it).
    var poseCandidates: Int { max(3, temporalCandidates * 2 / 5) }

    /// Frames each side of a camera's time whose nodes' motion moves it (0: the `poseCandidates`
    /// nearest in time only; `LoopClosureParameters.cameraWindow`).
    var cameraWindow = 0

    /// The `count` nodes whose times are nearest to `time` (default: `temporalCandidates`).
    func candidates(time: Int32, count: Int? = nil) -> Range<Int> {
        let wanted = count ?? temporalCandidates
        let n = nodeTimes.count
        let lo = firstNode(madeAtOrAfter: time)
        let start = max(0, min(lo - wanted / 2, n - wanted))
        return start..<min(n, start + wanted)
    }

    /// The nodes whose motion moves a camera of map time `time`: those made within
    /// `cameraWindow` frames of it, or the `poseCandidates` nearest in time if that is more.
    func cameraNodes(time: Int) -> Range<Int> {
        let nearest = candidates(time: Int32(clamping: time), count: poseCandidates)
        guard cameraWindow > 0 else { return nearest }
        let window = firstNode(madeAtOrAfter: Int32(clamping: time - cameraWindow))..<firstNode(madeAtOrAfter: Int32(clamping: time + cameraWindow + 1))
        return window.count > nearest.count ? window : nearest
    }

    /// The first node made at or after `time` (binary search of the ascending node times).
    func firstNode(madeAtOrAfter time: Int32) -> Int {
        var lo = 0, hi = nodeTimes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if nodeTimes[mid] < time { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Where the bend moves a camera that was at `pose` at map time `time`: rigidly, as the
    /// surface made around that time moved (the best rigid fit of those nodes' motion). A camera
    /// stands a metre or more from what it sees, so moving its centre like a surface point
    /// through the nodes' affine parts (ElasticFusion's way) turns small errors of their
    /// rotations into centimetres; the nodes' translations alone are far better determined.
    /// The fit takes every node made within `cameraWindow` frames: the few nearest in time lie
    /// in one small patch, and which surfels became those nodes swung the fitted rotation, and
    /// with it the camera, by centimetres (docs/results.md, issue 11).
    public func deform(_ pose: RigidTransform, time: Int) -> RigidTransform {
        let nodes = cameraNodes(time: time)
        let source = nodes.map { SIMD3<Float>(graph.positions[$0]) }
        let target = nodes.map { SIMD3<Float>(graph.positions[$0] + graph.translation[$0]) }
        if nodes.count >= 3, let motion = RigidRANSAC.fit(source, target), motion.isValid {
            return motion * pose
        }
        return graph.deform(pose, graph.influence(of: pose.translation, candidates: nodes))
    }

    /// The influence of a point made at `time`.
    func influence(of point: SIMD3<Double>, time: Int32) -> DeformationGraph.Influence {
        graph.influence(of: point, candidates: candidates(time: time))
    }
}

/// ElasticFusion's local loop closure: each frame, the inactive model (surface not seen for
/// `FusionParameters.timeDelta` frames) is rendered from the tracked pose; where it overlaps the
/// view, the active model's prediction is registered to it with the tracker's own ICP. A good
/// registration means the camera has come back to old surface along a drifted path: the map is
/// bent by a deformation graph so the recent (active) surface lands on the old one, the old
/// surface is pinned, and the bent surface becomes active again.
public struct LoopCloser: Sendable {
    /// Why a registration did not bend the map: the check it failed, and the figures behind it.
    public struct Rejection: Sendable, CustomStringConvertible {
        public enum Check: String, Sendable, CaseIterable {
            case registrationFailed = "registration failed"
            case fewInliers = "too few inliers"
            case residual = "residual too large"
            case poorlyConstrained = "poorly constrained"
            case beyondDrift = "beyond the drift since the last agreement"
            case tooLarge = "correction too large"
            case notRepeatable = "not repeatable"
            case fewConstraints = "too few constraints"
            case deformation = "deformation refused"
        }
        public var check: Check
        /// The check and its figures, for the log.
        public var message: String
        public var description: String { message }

        init(_ check: Check, _ message: String) {
            self.check = check
            self.message = message
        }

        /// "12 too few inliers, 3 not repeatable": counts by check, most first (ties in the
        /// order the checks run), for a summary line; empty when nothing was rejected.
        public static func tally(_ counts: [Check: Int]) -> String {
            var rows: [(order: Int, check: Check, count: Int)] = []
            for (order, check) in Check.allCases.enumerated() {
                if let count = counts[check], count > 0 { rows.append((order, check, count)) }
            }
            rows.sort { $0.count != $1.count ? $0.count > $1.count : $0.order < $1.order }
            return rows.map { "\($0.count) \($0.check.rawValue)" }.joined(separator: ", ")
        }
    }

    public enum Outcome: Sendable {
        /// Nothing to do this frame (no inactive surface in view, or too little).
        case skipped
        /// A registration was tried and failed a check (the rejection says which).
        case rejected(Rejection)
        /// The inactive surface already agreed with the active one: it was made active again.
        case reactivated(Int)
        /// The map was bent; `pose` is the corrected pose of the current camera.
        case closed(LoopClosureReport, MapDeformation, pose: RigidTransform)
    }

    public var parameters: LoopClosureParameters
    public var tracker: ICPTracker
    public init(parameters: LoopClosureParameters = LoopClosureParameters(), tracking: TrackingParameters = TrackingParameters()) {
        self.parameters = parameters
        // The registration's inlier test is the overlap test below: the tracker's (a fraction
        // of every pixel of the active prediction) would refuse any partial revisit.
        var registration = tracking
        registration.minInlierFraction = 0
        registration.photometricWeight = 0
        self.tracker = ICPTracker(parameters: registration)
    }

    /// Tries a loop closure for a camera tracked to `pose`, before the frame is fused.
    ///
    /// Local (no `hypothesis`): the inactive model is rendered from `pose` itself, and the active
    /// model rendered from `pose` is registered to it (ElasticFusion's model-to-model step).
    /// Global: the inactive model is rendered from `hypothesis`, where a registration to an old
    /// keyframe puts the camera (`Relocaliser.loopHypotheses`), for drift too large for ICP from
    /// the tracked pose. Only the old surface made by map time `madeBy` is drawn then (the
    /// keyframe's time and a little after): the keyframe's pose agrees with that surface, while
    /// surface later frames added around it carries their drift, and pinning it would hold the
    /// middle of the loop where it is. Registered to it is `live`, the frame itself, when given
    /// (its surface is all in view, where the stable active model can be a few recent patches),
    /// else the active model. The same checks and the same bend follow.
    ///
    /// `framesSinceConsistent`: frames since the camera was last found consistent with old
    /// surface, which bounds the correction (`LoopClosureParameters.driftAllowance`).
    public func attempt(_ fusion: SurfelFusion, pose: RigidTransform, from hypothesis: RigidTransform? = nil,
                        madeBy: Int? = nil, live: [VertexNormalMap]? = nil, framesSinceConsistent: Int? = nil) -> Outcome {
        let start = DispatchTime.now().uptimeNanoseconds
        let p = fusion.parameters
        guard fusion.tick > p.timeDelta else { return .skipped }
        let kind: LoopClosureReport.Kind = hypothesis == nil ? .local : .global
        let modelPose = hypothesis ?? pose
        let stable = p.trackingConfidenceThreshold ?? p.confidenceThreshold
        // A keyframe's surface is drawn from the confidence the map keeps (as relocalisation
        // does): what one keyframe's time made is often still short of stable.
        let oldSurface = hypothesis == nil ? stable : min(stable, p.keepConfidence ?? stable)
        let renderer = SurfelRenderer()
        // Most frames have no old surface in view: a projection of the surfels' centres decides
        // that before any disc is splatted.
        guard projectedCoverage(fusion, cameraFromWorld: modelPose.inverse, minimumConfidence: oldSurface) >= parameters.minInactiveCoverage else {
            return .skipped
        }
        let inactive = renderer.render(fusion.map, cameraFromWorld: modelPose.inverse, intrinsics: fusion.intrinsics,
                                       selection: .init(minimumConfidence: oldSurface, activeWithin: p.timeDelta, tick: fusion.tick, inactive: true, madeBy: madeBy),
                                       threads: p.threads)
        guard inactive.gridCoverage >= parameters.minInactiveCoverage else { return .skipped }
        let active = renderer.render(fusion.map, cameraFromWorld: pose.inverse, intrinsics: fusion.intrinsics,
                                     selection: .init(minimumConfidence: stable, activeWithin: p.timeDelta, tick: fusion.tick),
                                     threads: p.threads)
        // The registered surface at full resolution: the live frame's vertices or the active
        // model's, with the creation time of each point (a live point is made now).
        let liveVertices = live.flatMap { $0.first?.intrinsics.width == active.width && $0.first?.intrinsics.height == active.height ? $0[0].vertices : nil }
        let now = Int32(clamping: fusion.tick)
        func registered(_ q: Int) -> (vertex: SIMD3<Float>, time: Int32)? {
            if let liveVertices {
                return liveVertices[q].z > 0 ? (liveVertices[q], now) : nil
            }
            return active.surfel[q] >= 0 ? (active.vertices[q], fusion.map.initTimes[Int(active.surfel[q])]) : nil
        }
        var overlap = 0
        for q in 0..<(active.width * active.height) where inactive.surfel[q] >= 0 && registered(q) != nil { overlap += 1 }
        let frame = liveVertices != nil ? live! : pyramid(active, fusion)
        let model = pyramid(inactive, fusion)
        let result = tracker.track(frame: frame, model: model, previousPose: modelPose, threads: p.threads)
        let correction = pose.inverse * result.pose
        let metres = correction.translationNorm, degrees = correction.rotationAngle * 180 / .pi
        let detail = String(format: "%d inliers, %d overlapping pixels, residual %.1f mm, conditioning %.1e, correction %.1f mm %.2f deg",
                            result.inliers, overlap, result.residual * 1000, result.conditioning, metres * 1000, degrees)
        if let failure = result.failure { return .rejected(Rejection(.registrationFailed, "registration: \(failure) (\(detail))")) }
        let pixels = Double(fusion.intrinsics.width * fusion.intrinsics.height)
        if Double(result.inliers) < parameters.minInlierFraction * pixels || Double(result.inliers) < parameters.minOverlapInliers * Double(overlap) {
            return .rejected(Rejection(.fewInliers, "registration: too few inliers (\(detail))"))
        }
        if result.residual > parameters.maxResidual {
            return .rejected(Rejection(.residual, "registration residual too large (\(detail))"))
        }
        if result.conditioning < parameters.minConditioning {
            return .rejected(Rejection(.poorlyConstrained, "registration poorly constrained (\(detail))"))
        }
        let (maxMetres, maxDegrees) = kind == .local ? (parameters.maxCorrection, parameters.maxCorrectionDegrees)
                                                     : (parameters.maxGlobalCorrection, parameters.maxGlobalCorrectionDegrees)
        if let frames = framesSinceConsistent {
            let elapsed = Double(max(frames, 0))
            let driftMetres = min(maxMetres, parameters.driftAllowance + parameters.driftPerFrame * elapsed)
            let driftDegrees = min(maxDegrees, parameters.driftAllowanceDegrees + parameters.driftDegreesPerFrame * elapsed)
            if metres > driftMetres || degrees > driftDegrees {
                return .rejected(Rejection(.beyondDrift, String(format: "correction beyond the drift of %d frames since the camera last agreed with old surface (at most %.0f mm, %.1f deg; %@)",
                                        frames, driftMetres * 1000, driftDegrees, detail)))
            }
        }
        if metres > maxMetres || degrees > maxDegrees {
            return .rejected(Rejection(.tooLarge, "correction too large (\(detail))"))
        }
        if metres < parameters.minCorrection && degrees < parameters.minCorrectionDegrees {
            return .reactivated(reactivate(fusion, pose: pose, minimumConfidence: oldSurface))
        }
        if parameters.restartFraction > 0 {
            let again = restart(frame: frame, model: model, answer: modelPose.inverse * result.pose, threads: p.threads)
            if again.failure != nil || again.metres > max(parameters.restartFloor, parameters.restartTolerance * metres)
                || again.degrees > max(parameters.restartFloorDegrees, parameters.restartTolerance * degrees) {
                return .rejected(Rejection(.notRepeatable, String(format: "registration not repeatable: restarted %.0f %% of the way, it ends %.1f mm %.2f deg from its first answer%@ (%@)",
                                        parameters.restartFraction * 100, again.metres * 1000, again.degrees,
                                        again.failure.map { ", \($0)" } ?? "", detail)))
            }
        }

        // Constraints on the grid: active points to where the registration puts them, inactive
        // points pinned. Each carries the creation time of its surfel, which picks its nodes.
        let map = fusion.map
        var points: [(source: SIMD3<Double>, target: SIMD3<Double>, time: Int32)] = []
        var pins = 0
        let windowStart = Int32(clamping: fusion.tick - p.timeDelta)
        let w = active.width, h = active.height
        for gy in 0..<parameters.gridRows {
            for gx in 0..<parameters.gridColumns {
                let q = ((2 * gy + 1) * h / (2 * parameters.gridRows)) * w + (2 * gx + 1) * w / (2 * parameters.gridColumns)
                // Active surface made before the window was re-observed, not made along the
                // drifted path: its nodes belong to the old map, so it is not pulled.
                if let point = registered(q), point.time >= windowStart {
                    let v = SIMD3<Double>(point.vertex)
                    points.append((pose * v, result.pose * v, point.time))
                }
                if inactive.surfel[q] >= 0 {
                    let world = modelPose * SIMD3<Double>(inactive.vertices[q])
                    points.append((world, world, map.initTimes[Int(inactive.surfel[q])]))
                    pins += 1
                }
            }
        }
        guard points.count - pins >= parameters.minConstraints, pins >= parameters.minConstraints else {
            return .rejected(Rejection(.fewConstraints, "too few constraints (\(points.count - pins) recent surface points, \(pins) old ones on the grid)"))
        }
        guard let deformation = makeGraph(map) else { return .rejected(Rejection(.deformation, "map too small for a deformation graph")) }
        var graph = deformation.graph
        let constraints = points.map {
            DeformationGraph.Constraint(source: $0.source, target: $0.target, influence: deformation.influence(of: $0.source, time: $0.time))
        }
        guard let report = graph.optimise(constraints) else { return .rejected(Rejection(.deformation, "deformation: normal equations singular")) }
        if !(report.constraintErrorAfter <= parameters.maxDeformationResidual) || report.constraintErrorAfter > 0.5 * report.constraintErrorBefore {
            return .rejected(Rejection(.deformation, String(format: "deformation residual %.1f mm (%.1f mm before)", report.constraintErrorAfter * 1000, report.constraintErrorBefore * 1000)))
        }
        let bent = MapDeformation(graph: graph, nodeTimes: deformation.nodeTimes, temporalCandidates: deformation.temporalCandidates,
                                  cameraWindow: deformation.cameraWindow)
        apply(bent, to: map, threads: p.threads)
        let reactivated = reactivate(fusion, pose: result.pose, minimumConfidence: oldSurface)
        let closure = LoopClosureReport(kind: kind, tick: fusion.tick, constraints: points.count - pins, pins: pins,
                                        residualBefore: report.constraintErrorBefore, residualAfter: report.constraintErrorAfter,
                                        correctionMetres: metres, correctionDegrees: degrees, nodes: graph.nodeCount,
                                        inliers: result.inliers, overlap: overlap, conditioning: result.conditioning,
                                        reactivated: reactivated, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        return .closed(closure, bent, pose: result.pose)
    }

    /// The registration of `frame` to `model` run again from `restartFraction` of `answer` (both
    /// previousCamera ← currentCamera, as `ICPTracker.track` composes them): how far it ends
    /// from `answer`, or why it failed. A minimum ICP found honestly is where it comes back to.
    public func restart(frame: [VertexNormalMap], model: [VertexNormalMap], answer: RigidTransform,
                        threads: Int) -> (metres: Double, degrees: Double, failure: String?) {
        let again = tracker.track(frame: frame, model: model, previousPose: .identity, threads: threads,
                                  initial: answer.fraction(parameters.restartFraction))
        let apart = answer.inverse * again.pose
        return (apart.translationNorm, apart.rotationAngle * 180 / .pi, again.failure)
    }

    /// Fraction of the 32x24 grid cells of the view that the centre of at least one stable
    /// inactive surfel projects into: a cheap estimate (one projection per inactive surfel, no
    /// occlusion) of what the rendered inactive model covers, to skip the renders when it is
    /// clearly too little.
    func projectedCoverage(_ fusion: SurfelFusion, cameraFromWorld: RigidTransform, minimumConfidence: Float) -> Double {
        let k = fusion.intrinsics, p = fusion.parameters
        let T = cameraFromWorld.float
        let fx = Float(k.fx), fy = Float(k.fy), cx = Float(k.cx), cy = Float(k.cy)
        let w = Float(k.width), h = Float(k.height)
        let oldest = Int32(clamping: fusion.tick - p.timeDelta)
        let map = fusion.map
        let positions = map.positions, confidences = map.confidences, lastSeen = map.lastSeen
        var cells = [Bool](repeating: false, count: 32 * 24)
        var covered = 0
        for i in 0..<positions.count where lastSeen[i] < oldest && confidences[i] >= minimumConfidence {
            let c = T.apply(positions[i])
            guard c.z > 0.05, c.z < p.maxIndexDepth else { continue }
            let u = fx * c.x / c.z + cx, v = fy * c.y / c.z + cy
            guard u >= 0, v >= 0, u < w, v < h else { continue }
            let cell = Int(v * 24 / h) * 32 + Int(u * 32 / w)
            if !cells[cell] { cells[cell] = true; covered += 1 }
        }
        return Double(covered) / Double(cells.count)
    }

    func pyramid(_ render: SurfelRenderer.Output, _ fusion: SurfelFusion) -> [VertexNormalMap] {
        VertexNormalMap(intrinsics: fusion.intrinsics, vertices: render.vertices, normals: render.normals)
            .pyramid(levels: 3, threads: fusion.parameters.threads)
    }

    /// Nodes sampled uniformly from the surfels in creation order. Surfels made in the same
    /// frame are ranked by where they are (Z-order of the map's grid, then their coordinates),
    /// not by where the map stores them: storage order changes with every compaction and
    /// spatial reordering, and the graph must not change with it.
    func makeGraph(_ map: SurfelMap) -> MapDeformation? {
        let count = map.count
        guard count >= 4 else { return nil }
        let nodes = min(count, max(parameters.minNodes, min(parameters.maxNodes, count / max(1, parameters.surfelsPerNode))))
        let initTimes = map.initTimes, mapPositions = map.positions
        let order = map.creationOrder()
        var positions: [SIMD3<Double>] = [], times: [Int32] = []
        for k in 0..<nodes {
            let i = Int(order[(2 * k + 1) * count / (2 * nodes)])
            positions.append(SIMD3<Double>(mapPositions[i]))
            times.append(initTimes[i])
        }
        return MapDeformation(graph: DeformationGraph(nodes: positions, parameters: parameters.graph), nodeTimes: times,
                              temporalCandidates: max(parameters.graph.pointNeighbours + 1, parameters.temporalCandidates),
                              cameraWindow: parameters.cameraWindow)
    }

    /// Moves every surfel (position and normal) by the bend: the same influences as
    /// `DeformationGraph.influence` (the `pointNeighbours` nearest of the nodes nearest in time,
    /// weighted (1 − d/d_max)²), found without allocating per surfel, since a map has a million.
    func apply(_ deformation: MapDeformation, to map: SurfelMap, threads: Int) {
        let graph = deformation.graph
        let k = min(graph.parameters.pointNeighbours, 7)
        let count = map.count
        var positions = map.positions, normals = map.normals
        let times = map.initTimes
        let nodePositions = graph.positions.map { SIMD3<Float>($0) }
        let nodeTargets = graph.positions.indices.map { SIMD3<Float>(graph.positions[$0] + graph.translation[$0]) }
        let affine = graph.affine.map { RigidTransformF(matrix: $0) }
        let normalMatrices = graph.affine.map { RigidTransformF(matrix: $0.inverseTranspose) }
        // Candidate ranges per distinct creation time (times are frame counters: few of them).
        var ranges: [Int32: Range<Int>] = [:]
        for t in Set(times) { ranges[t] = deformation.candidates(time: t) }
        positions.withKernelOutput { positionsOut in
        normals.withKernelOutput { normalsOut in
            ParallelFor.run(count, chunks: max(1, threads * 4), threads: threads) { _, range in
                for i in range {
                    guard let candidates = ranges[times[i]], !candidates.isEmpty else { continue }
                    let p = positionsOut[i]
                    // The k + 1 nearest candidates, sorted (insertion into a small vector).
                    var bestD = SIMD8<Float>(repeating: .infinity)
                    var bestJ = SIMD8<Int32>(repeating: -1)
                    for j in candidates {
                        let d = p - nodePositions[j]
                        var dist = (d * d).sum().squareRoot()
                        guard dist < bestD[k] else { continue }
                        var node = Int32(j)
                        for slot in 0...k where dist < bestD[slot] {
                            swap(&dist, &bestD[slot]); swap(&node, &bestJ[slot])
                        }
                    }
                    let found = min(k, candidates.count)
                    let dMax = candidates.count > k ? bestD[k] : bestD[found - 1] * 1.5 + 1e-9
                    var weights = SIMD8<Float>(repeating: 0), sum: Float = 0
                    for slot in 0..<found {
                        let r = 1 - bestD[slot] / max(dMax, 1e-12)
                        weights[slot] = r * r
                        sum += r * r
                    }
                    if !(sum > 1e-12) {
                        for slot in 0..<found { weights[slot] = 1 }
                        sum = Float(found)
                    }
                    var moved = SIMD3<Float>.zero, turned = SIMD3<Float>.zero
                    for slot in 0..<found {
                        let j = Int(bestJ[slot]), w = weights[slot] / sum
                        moved += w * (affine[j].rotate(p - nodePositions[j]) + nodeTargets[j])
                        turned += w * normalMatrices[j].rotate(normalsOut[i])
                    }
                    positionsOut[i] = moved
                    let length = (turned * turned).sum().squareRoot()
                    if length > 0 { normalsOut[i] = turned / length }
                }
            }
        }}
        map.positions = positions
        map.normals = normals
    }

    /// ElasticFusion's rule 5: stable inactive surfels that project into the view from `pose`
    /// and lie no more than `reactivationDepth` behind the rendered surface are seen again.
    /// A global closure reactivates from the confidence it registered to, so the old surface it
    /// joined is active (and fused into) from the next frame, not found again by the next search.
    func reactivate(_ fusion: SurfelFusion, pose: RigidTransform, minimumConfidence: Float? = nil) -> Int {
        let p = fusion.parameters
        let stable = minimumConfidence ?? p.trackingConfidenceThreshold ?? p.confidenceThreshold
        let k = fusion.intrinsics
        let render = SurfelRenderer().render(fusion.map, cameraFromWorld: pose.inverse, intrinsics: k,
                                             selection: .init(minimumConfidence: stable), threads: p.threads)
        let T = pose.inverse.float
        let fx = Float(k.fx), fy = Float(k.fy), cx = Float(k.cx), cy = Float(k.cy)
        let oldest = Int32(clamping: fusion.tick - p.timeDelta)
        let now = Int32(clamping: fusion.tick)
        let map = fusion.map
        var lastSeen = map.lastSeen
        let positions = map.positions, confidences = map.confidences
        var reactivated = 0
        for i in 0..<positions.count where lastSeen[i] < oldest && confidences[i] >= stable {
            let c = T.apply(positions[i])
            guard c.z > 0 else { continue }
            let u = (fx * c.x / c.z + cx).rounded(), v = (fy * c.y / c.z + cy).rounded()
            guard u >= 0, v >= 0, u < Float(k.width), v < Float(k.height) else { continue }
            let z = render.depth.pixels[Int(v) * k.width + Int(u)]
            guard z > 0, c.z <= z + parameters.reactivationDepth else { continue }
            lastSeen[i] = now
            reactivated += 1
        }
        map.lastSeen = lastSeen
        return reactivated
    }
}

private extension RigidTransformF {
    /// A 3x3 matrix (not necessarily a rotation) as the linear part of a float transform.
    init(matrix m: Matrix3) {
        self.init(r0: SIMD3<Float>(m.r0), r1: SIMD3<Float>(m.r1), r2: SIMD3<Float>(m.r2), t: .zero)
    }
}
