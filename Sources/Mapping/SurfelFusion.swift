import CPrefetch
import CPUCheck
import Foundation
import Geometry
import Imaging
import Semantics

/// Fuses RGB-D frames with known poses into a `SurfelMap`, the way ElasticFusion does
/// (reference notes §1-2), and fuses per-pixel class probabilities into the surfels the way
/// SemanticFusion does (§5).
///
/// Per frame: depth cut-off and bilateral filter → index map of active surfels → association on
/// ElasticFusion's checkerboard → confidence-weighted merge or new unstable surfel → index map
/// again → Bayesian label update → cleanup → every `spatialOrderInterval` frames, the map put in
/// spatial order.
public final class SurfelFusion {
    public let map: SurfelMap
    public let intrinsics: Intrinsics
    public let parameters: FusionParameters
    /// Frame counter: 0 before the first frame, then 1, 2, ... as in ElasticFusion.
    public private(set) var tick: Int = 0
    /// The index map after the last frame's fusion (the view label fusion and cleanup used),
    /// with the surfels numbered as in the map after the cleanup's compaction.
    public var indexMap: IndexMap {
        applyPendingRemap()
        return postIndexMap
    }
    /// The cleanup's compaction, applied to `postIndexMap` only if someone reads `indexMap`:
    /// the pipeline renders a new one next frame, so renumbering every pixel was wasted work.
    private var pendingRemap: (SurfelMap.Compaction, [Bool])?

    private func applyPendingRemap() {
        guard let (compaction, removed) = pendingRemap else { return }
        postIndexMap.remapSurfels(compaction, removed: removed)
        pendingRemap = nil
    }

    private var previousPose: RigidTransform?
    private let bilateral: BilateralFilter
    // Per-frame workspace, sized once per image size and reused.
    private var rawDepth: [Float] = []
    private var filteredDepth: [Float] = []
    private var preIndexMap = IndexMap()
    private var postIndexMap = IndexMap()
    // Per pixel: the matched surfel (-1 new, -2 not processed) and the measurement in world
    // coordinates (`associate`), the depth and creation time of the visible surfel (`cleanup`).
    private let matches = KernelBuffer<Int32>()
    private let measuredPosition = KernelBuffer<SIMD3<Float>>()
    private let measuredNormal = KernelBuffer<SIMD3<Float>>()
    private let measuredRadius = KernelBuffer<Float>()
    private let measuredWeight = KernelBuffer<Float>()
    private let pixelInitTime = KernelBuffer<Int32>()
    /// Per pixel for the cleanup scan: the shown surfel's depth if it is stable, negated if it
    /// was not seen this frame; NaN where no stable surfel is shown (one load per neighbour).
    private let pixelStableDepth = KernelBuffer<Float>()
    /// Per pixel for the cleanup scan: camera-frame x, y of the stable surfel shown there (read
    /// where `pixelStableDepth` is not NaN), so the duplicate test reads a plane, not the map.
    private let pixelStableXY = KernelBuffer<SIMD2<Float>>()
    /// Label-fusion workspace per worker chunk (top-k storage).
    private let labelScratch = KernelBuffer<Float>()
    /// Σ q and the classes of largest q per pixel of the class prediction (top-k storage).
    private let predictionSum = KernelBuffer<Float>()
    private let predictionRanking = KernelBuffer<UInt16>()
    /// Byte log-codes per pixel of the class prediction (log-code storage; `predictionSum` then
    /// holds 1 where the pixel carries evidence, 0 where not).
    private let predictionCodes = KernelBuffer<UInt8>()
    /// Per pixel: the confidence weight of a measurement there before the velocity factor
    /// (`AssociationMeasurement.radialWeights`), made at the first frame.
    private var radialWeights: [Float] = []
    /// Association measures eight pixels at a time; false measures them one by one with the
    /// same arithmetic (the maps are the same; tests compare the two).
    var associationVectorised = true
    private var lastWriter: [Int32] = []
    private var newPixels: [Int32] = []
    private var removeFlags: [Bool] = []
    /// The most recent live vertex/normal map (finest level), for filling prediction holes.
    var lastLiveFrame: VertexNormalMap?
    /// Intensity of the last tracked live frame, for filling holes in the predicted intensity.
    var lastLiveIntensity: [Float]?

    /// Statistics of one integrated frame.
    public struct FrameReport: Sendable {
        public var tick: Int
        public var processedPixels = 0
        public var fused = 0
        public var created = 0
        public var removed = 0
        public var labelUpdates = 0
        public var surfelCount = 0
        /// Seconds spent in: preprocessing, index maps, association+update, labels, cleanup.
        public var timings = StageTimings()
    }

    public struct StageTimings: Sendable {
        public var preprocess = 0.0
        public var indexMap = 0.0
        public var fusion = 0.0
        public var labels = 0.0
        public var cleanup = 0.0
        /// The periodic spatial reordering of the map (0 on the frames without one).
        public var ordering = 0.0
        public init(preprocess: Double = 0, indexMap: Double = 0, fusion: Double = 0, labels: Double = 0, cleanup: Double = 0,
                    ordering: Double = 0) {
            self.preprocess = preprocess; self.indexMap = indexMap; self.fusion = fusion; self.labels = labels; self.cleanup = cleanup
            self.ordering = ordering
        }
        public var total: Double { preprocess + indexMap + fusion + labels + cleanup + ordering }
        public static func + (a: StageTimings, b: StageTimings) -> StageTimings {
            StageTimings(preprocess: a.preprocess + b.preprocess, indexMap: a.indexMap + b.indexMap,
                         fusion: a.fusion + b.fusion, labels: a.labels + b.labels, cleanup: a.cleanup + b.cleanup,
                         ordering: a.ordering + b.ordering)
        }
    }

    public init(intrinsics: Intrinsics, classCount: Int, unlabelledClass: Int? = nil,
                parameters: FusionParameters = FusionParameters()) {
        KernelCPU.requireSupported()   // the module is AVX2 code (Package.swift, checkedKernelFlags)
        self.intrinsics = intrinsics
        self.parameters = parameters
        self.map = SurfelMap(classCount: classCount, unlabelledClass: unlabelledClass, labelStorage: parameters.labelStorage)
        self.bilateral = BilateralFilter(window: parameters.bilateralWindow, sigmaSpace: parameters.bilateralSigmaSpace,
                                         sigmaRange: parameters.bilateralSigmaRange)
    }

    /// Integrates one frame. `depth` in metres (0 = missing; NaN and out-of-range values are
    /// treated as missing), `worldFromCamera` the camera pose, `probabilities` the per-pixel class
    /// distribution (any resolution) or nil for geometry only.
    ///
    /// Inputs are validated before anything changes, so a bad frame leaves the map untouched.
    @discardableResult
    ///
    /// `filteredDepth` may pass the bilateral-filtered depth of this frame when the caller has it
    /// already (the tracker filters every frame), so it is not filtered twice.
    public func integrate(depth: DepthImage, color: ColorImage, worldFromCamera pose: RigidTransform,
                          probabilities: ClassProbabilityMap? = nil, source: String = "frame",
                          filteredDepth prefiltered: [Float]? = nil) throws -> FrameReport {
        let w = intrinsics.width, h = intrinsics.height
        guard depth.width == w, depth.height == h else {
            throw MappingError.imageSize(source: source, what: "depth", found: "\(depth.width)x\(depth.height)", expected: "\(w)x\(h)")
        }
        guard color.width == w, color.height == h else {
            throw MappingError.imageSize(source: source, what: "colour", found: "\(color.width)x\(color.height)", expected: "\(w)x\(h)")
        }
        guard pose.isValid else { throw MappingError.invalidPose(source: source) }
        if let prefiltered, prefiltered.count != w * h {
            throw MappingError.imageSize(source: source, what: "filtered depth", found: "\(prefiltered.count) values", expected: "\(w * h)")
        }
        if let probabilities {
            guard probabilities.classCount == map.classCount else {
                throw MappingError.classCountMismatch(source: source, found: probabilities.classCount, expected: map.classCount)
            }
            if let problem = probabilities.validationProblem() {
                throw MappingError.invalidProbabilities(source: source, reason: problem)
            }
        }

        tick += 1
        var report = FrameReport(tick: tick)
        var t0 = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let t1 = DispatchTime.now().uptimeNanoseconds
            defer { t0 = t1 }
            return Double(t1 - t0) / 1e9
        }

        let velocityWeight = velocityFactor(pose)
        previousPose = pose
        preprocess(depth, prefiltered: prefiltered)
        report.timings.preprocess = lap()

        let cameraFromWorld = pose.inverse
        preIndexMap.render(map, cameraFromWorld: cameraFromWorld, intrinsics: intrinsics, tick: tick,
                           timeDelta: parameters.timeDelta, maxDepth: parameters.maxIndexDepth, threads: parameters.threads,
                           recordInView: true)
        report.timings.indexMap = lap()

        let countBefore = map.count
        associate(pose: pose, velocityWeight: velocityWeight, report: &report)
        applyUpdates(color: color, report: &report)
        report.timings.fusion = lap()

        // Fusion moved only surfels the first index map showed and appended new ones, so the
        // surfels it found in view and the new ones are all that can be in view now.
        pendingRemap = nil
        postIndexMap.render(map, cameraFromWorld: cameraFromWorld, intrinsics: intrinsics, tick: tick,
                            timeDelta: parameters.timeDelta, maxDepth: parameters.maxIndexDepth, threads: parameters.threads,
                            positions: false, recordInView: true, only: (preIndexMap.inView, countBefore))
        report.timings.indexMap += lap()

        if let probabilities, map.classCount > 0 {
            report.labelUpdates = fuseLabels(probabilities, firstNew: map.count - report.created)
        }
        report.timings.labels = lap()

        report.removed = cleanup(cameraFromWorld: cameraFromWorld)
        report.timings.cleanup = lap()

        if parameters.spatialOrderInterval > 0, tick % parameters.spatialOrderInterval == 0 {
            applyPendingRemap()   // the reordering's numbers follow the compaction's
            postIndexMap.remapSurfels(map.sortSpatially(cell: parameters.spatialOrderCell, threads: parameters.threads))
            report.timings.ordering = lap()
        }
        report.surfelCount = map.count
        return report
    }

    /// Takes in everything `other` fused (a piece of the scene tracked in its own frame while this
    /// map had lost the camera), moved by `transform` into this map's frame. Returns the time
    /// offset added to `other`'s ticks. `other` must have the same classes and label storage.
    ///
    /// `current`: the other map's frames are the latest (a piece joining the map on the frame
    /// both just saw). Its surfel times follow this map's, and the clock advances by its frames,
    /// so its surface is the active one and surface of this map left long ago turns inactive, as
    /// if the camera had been tracked all along; the live frame is the piece's.
    /// Otherwise (a piece left earlier, which the camera tracked in this map has come back to)
    /// its times are shifted to end at this map's current time, so the surface in view is active
    /// and this map's own surface keeps its age; the clock and the live frame stay this map's.
    /// Its surfels that lie on surface this map already has (`SurfelMap.overlap`) are dropped
    /// then: this map has rebuilt that surface meanwhile, and two copies a centimetre or two
    /// apart double the surface that later loop closures register against (on the kitchen
    /// played forwards and back with a cut, the way back scored 28.0 mm by the median of three
    /// runs with both copies, 24.4 mm with one, 23.6 mm without the piece; docs/results.md).
    @discardableResult
    public func absorb(_ other: SurfelFusion, transformedBy transform: RigidTransform, current: Bool = true) -> Int {
        precondition(other !== self && other.map.classCount == map.classCount && other.map.labelStorage == map.labelStorage)
        let offset = current ? tick : tick - other.tick
        if !current {
            let (flags, count) = map.overlap(other.map, transformedBy: transform)
            if count > 0 { other.map.remove(where: flags, removed: count) }
        }
        map.append(contentsOf: other.map, transformedBy: transform, timeOffset: Int32(clamping: offset))
        guard current else { return offset }
        tick += other.tick
        previousPose = other.previousPose.map { transform * $0 }
        // The last live frame is in camera coordinates: it is the frame both maps just saw.
        lastLiveFrame = other.lastLiveFrame
        lastLiveIntensity = other.lastLiveIntensity
        return offset
    }

    /// Frees the per-frame buffers (filtered depth, index maps, association scratch, the last
    /// live frame): a fusion that will not integrate again (a piece kept until the map meets it)
    /// needs only its map and clock. `integrate` allocates them again if it is called.
    public func releaseWorkspace() {
        pendingRemap = nil   // it renumbers the index map, which goes
        rawDepth = []; filteredDepth = []
        preIndexMap = IndexMap(); postIndexMap = IndexMap()
        let buffers: [KernelBufferReleasable] = [matches, measuredPosition, measuredNormal, measuredRadius, measuredWeight, pixelInitTime,
                                                 pixelStableDepth, pixelStableXY, labelScratch, predictionSum, predictionRanking, predictionCodes]
        for buffer in buffers { buffer.clear() }
        radialWeights = []; lastWriter = []; newPixels = []; removeFlags = []
        lastLiveFrame = nil; lastLiveIntensity = nil
    }

    /// ElasticFusion's weight for fast motion: m = min(max(|t|, |rotation|), 0.01),
    /// w = max(1 - m / 0.01, 0.5); the first frame gets 1.
    private func velocityFactor(_ pose: RigidTransform) -> Float {
        guard let previousPose else { return 1 }
        let rel = previousPose.inverse * pose
        let m = min(max(rel.translationNorm, rel.rotationAngle), 0.01)
        return Float(max(1 - m / 0.01, 0.5))
    }

    private func preprocess(_ depth: DepthImage, prefiltered: [Float]?) {
        let n = depth.count
        if rawDepth.count != n { rawDepth = [Float](repeating: 0, count: n) }
        let lo = parameters.minDepth, hi = parameters.maxDepth
        depth.pixels.withKernelInput { src in
            rawDepth.withKernelOutput { dst in
                for i in 0..<n {
                    let z = src[i]
                    dst[i] = z.isFinite && z >= lo && z <= hi ? z : 0
                }
            }
        }
        if let prefiltered {
            filteredDepth = prefiltered
            return
        }
        // After the first frame association reads only the checkerboard and its neighbours.
        let parity: Int? = tick == 1 || !parameters.checkerboard ? nil : tick % 2
        bilateral.apply(DepthImage(width: depth.width, height: depth.height, pixels: rawDepth), into: &filteredDepth,
                        threads: parameters.threads, checkerboardParity: parity)
    }

    /// For every processed pixel, finds the surfel it belongs to (or -1 for a new surfel) and
    /// stores the measurement in world coordinates.
    private func associate(pose: RigidTransform, velocityWeight: Float, report: inout FrameReport) {
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        if matches.resize(n, repeating: -2) {
            measuredPosition.resize(n, repeating: .zero)
            measuredNormal.resize(n, repeating: .zero)
            measuredRadius.resize(n, repeating: 0)
            measuredWeight.resize(n, repeating: 0)
        }
        let everyPixel = tick == 1 || !parameters.checkerboard
        let parity = tick % 2
        let T = pose.float
        let measurement = AssociationMeasurement(intrinsics: intrinsics)
        if radialWeights.count != n {
            radialWeights = measurement.radialWeights(maxRadialDistance: parameters.maxRadialDistance,
                                                      twoSigmaSquared: parameters.weightTwoSigmaSquared)
        }
        let maxDist = parameters.associationDistance
        let normalZ = parameters.associationNormalZ
        let cosAngle = cos(parameters.associationAngle)
        let camR = pose.inverse.float
        let threads = parameters.threads
        let vectorised = associationVectorised

        let match = matches.output, mPos = measuredPosition.output, mNrm = measuredNormal.output
        let mRad = measuredRadius.output, mW = measuredWeight.output
        rawDepth.withKernelInput { raw in
        filteredDepth.withKernelInput { filt in
        radialWeights.withKernelInput { radial in
        preIndexMap.withKernelInputs { index in
        map.withKernelInputs { m in
            let ids = index.surfel, idPos = index.cameraPosition, normals = m.normals
            let raw = raw.base, filt = filt.base
            // Candidates: the 3x3 index-map neighbourhood (the 4x4 half-pixel lookups of
            // ElasticFusion at index-map FACTOR 1); the one nearest the pixel's ray wins.
            @inline(__always) func search(_ p: Int, _ pixel: AssociationMeasurement.Pixel) {
                let z = pixel.vertex.z, nc = pixel.normal, ray = pixel.ray, rayScale = pixel.rayScale
                var best: Int32 = -1
                var bestPerp = Float.infinity
                for dy in -1...1 {
                    for dx in -1...1 {
                        let q = p + dy * w + dx
                        let id = ids[q]
                        if id < 0 { continue }
                        let vm = idPos[q]
                        guard abs(vm.z - z) * rayScale < maxDist else { continue }
                        let nm = camR.rotate(normals[Int(id)])
                        guard abs(nm.z) < normalZ || nm.dot(nc) > cosAngle else { continue }
                        let along = vm.dot(ray)
                        let perp = vm.dot(vm) - along * along
                        if perp < bestPerp || (perp == bestPerp && id < best) {
                            bestPerp = perp; best = id
                        }
                    }
                }
                match[p] = best
                mPos[p] = T.apply(pixel.vertex)
                mNrm[p] = T.rotate(nc)
                mRad[p] = pixel.radius
                mW[p] = velocityWeight * radial[p]
            }
            ParallelFor.run(h, chunks: threads * 2, threads: threads) { _, rows in
                for y in rows {
                    for x in 0..<w { match[y * w + x] = -2 }
                    guard everyPixel || y % 2 == parity, y > 0, y < h - 1 else { continue }
                    // Candidates' normals are read at random surfel indices. Start loading those
                    // of the rows the next processed row adds to its 3x3 windows, a row ahead.
                    let step = everyPixel ? 1 : 2
                    for yy in (y + step)...(y + step + 1) where yy < h {
                        for x in 0..<w {
                            let id = ids[yy * w + x]
                            if id >= 0 { semfuse_prefetch_for_read(normals.address(Int(id))) }
                        }
                    }
                    // The processed pixels off the border: every one, or every second one.
                    var x = everyPixel ? 1 : (parity == 0 ? 2 : 1)
                    if vectorised {
                        while x + 8 * step <= w - 1 {
                            let lanes = measurement.lanes(raw: raw, filtered: filt, x0: x, y: y, step: step)
                            if any(lanes.valid) {
                                for k in 0..<8 where lanes.valid[k] { search(y * w + x + k * step, lanes[k]) }
                            }
                            x += 8 * step
                        }
                    }
                    while x < w - 1 {
                        if let pixel = measurement.pixel(raw: raw, filtered: filt, x: x, y: y) { search(y * w + x, pixel) }
                        x += step
                    }
                }
            }
        }}}}}
    }

    /// Merges matched measurements (the last pixel hitting a surfel wins, as on the GPU) and
    /// appends new unstable surfels in scan order.
    private func applyUpdates(color: ColorImage, report: inout FrameReport) {
        let n = matches.count
        let t = Int32(clamping: tick)
        if lastWriter.count < map.count { lastWriter.append(contentsOf: repeatElement(-1, count: map.count - lastWriter.count)) }
        newPixels.removeAll(keepingCapacity: true)
        var processed = 0
        let match = matches.input
        lastWriter.withKernelOutput { writer in
            for p in 0..<n {
                let s = match[p]
                if s == -2 { continue }
                processed += 1
                if s >= 0 { writer[Int(s)] = Int32(p) } else { newPixels.append(Int32(p)) }
            }
        }
        report.processedPixels = processed
        // Each surfel is merged by exactly one pixel (its last writer), so chunks of pixels can
        // merge concurrently without touching the same surfel.
        let mergeFactor = parameters.radiusMergeFactor
        var fusedPerChunk = [Int](repeating: 0, count: parameters.threads * 2)
        let mPos = measuredPosition.input, mNrm = measuredNormal.input, mRad = measuredRadius.input, mW = measuredWeight.input
        lastWriter.withKernelInput { writer in
        color.pixels.withKernelInput { rgb in
        map.withKernelViews { m in
        fusedPerChunk.withKernelOutput { counts in
            let pos = m.positions, nrm = m.normals, rad = m.radii, conf = m.confidences, col = m.colors, seen = m.lastSeen
            let chunks = counts.count
            ParallelFor.run(n, chunks: chunks, threads: parameters.threads) { k, pixels in
                var fused = 0
                for p in pixels {
                    let s = match[p]
                    guard s >= 0, writer[Int(s)] == Int32(p) else { continue }
                    let i = Int(s)
                    let c = conf[i], a = mW[p]
                    if mRad[p] < mergeFactor * rad[i] {
                        let inv = 1 / (c + a)
                        pos[i] = (c * pos[i] + a * mPos[p]) * inv
                        nrm[i] = ((c * nrm[i] + a * mNrm[p]) * inv).normalized
                        rad[i] = (c * rad[i] + a * mRad[p]) * inv
                        let old = col[i], new = rgb[p]
                        @inline(__always) func mix(_ o: UInt8, _ m: UInt8) -> UInt8 {
                            UInt8(max(0, min(255, ((c * Float(o) + a * Float(m)) * inv).rounded())))
                        }
                        col[i] = RGB8(mix(old.r, new.r), mix(old.g, new.g), mix(old.b, new.b))
                    }
                    conf[i] = c + a
                    seen[i] = t
                    fused += 1
                }
                counts[k] = fused
            }
        }}}}
        report.fused = fusedPerChunk.reduce(0, +)
        map.reserve(additional: newPixels.count)
        for p32 in newPixels {
            let p = Int(p32)
            map.append(position: mPos[p], normal: mNrm[p], radius: mRad[p], confidence: mW[p], color: color.pixels[p], time: t)
        }
        report.created = newPixels.count
    }

    /// SemanticFusion's recursive Bayesian update p ← normalise(p ⊙ q) for every surfel visible in
    /// the post-fusion index map whose depth agrees with the measurement, and for every surfel
    /// this frame created (`firstNew...`) from the pixel that created it.
    ///
    /// The second rule matters where new surfels stack up behind others instead of merging (as
    /// with predicted depth, which never agrees closely from frame to frame): a surfel hidden in
    /// the z-buffer from its first frame on would otherwise never receive the evidence of the very
    /// measurement that made it (36 % of the surfels of a 100-frame RGB-only kitchen map were
    /// unlabelled). New surfels are skipped in the index-map pass so none is counted twice.
    private func fuseLabels(_ probabilities: ClassProbabilityMap, firstNew: Int) -> Int {
        let w = intrinsics.width, h = intrinsics.height, c = map.classCount
        let pw = probabilities.width, ph = probabilities.height
        let agreement = parameters.labelDepthAgreement
        let chunks = parameters.threads * 2
        var updatedPerChunk = [Int](repeating: 0, count: chunks)
        let scratchCount = TopKBayesUpdate.scratchCount(kept: map.keptClasses)
        labelScratch.resize(max(1, chunks * scratchCount), repeating: 0)
        // Nearest source column/row for every image column/row (SemanticFusion: nearest scaling).
        let columns = (0..<w).map { min(pw - 1, ($0 * pw) / w) }
        let rowsMap = (0..<h).map { min(ph - 1, ($0 * ph) / h) }
        let scratch = labelScratch.output
        if map.keptClasses > 0 { rankPredictions(probabilities) }
        if map.codeSlots > 0 { encodePredictions(probabilities) }
        let ranking = PredictionRanking(sum: predictionSum.input, order: predictionRanking.input,
                                        count: TopKBayesUpdate.rankingCount(kept: map.keptClasses, classCount: c),
                                        codes: predictionCodes.input)
        rawDepth.withKernelInput { raw in
        postIndexMap.withKernelInputs { index in
        probabilities.values.withKernelInput { q in
        map.withKernelViews { m in
        updatedPerChunk.withKernelOutput { counts in
            let ids = index.surfel, idDepth = index.depth
            let update = LabelUpdate(map: map, views: m, q: q, ranking: ranking, floor: parameters.probabilityFloor)
            ParallelFor.run(h, chunks: chunks, threads: parameters.threads) { k, rows in
                let work = scratch.slice((k * scratchCount)..<((k + 1) * scratchCount))
                var updated = 0
                for y in rows {
                    let qRow = rowsMap[y] * pw
                    for x in 0..<w {
                        let pix = y * w + x
                        // Surfel records are scattered: start loading the one a few pixels on.
                        if x + LabelUpdate.lookahead < w {
                            let ahead = ids[pix + LabelUpdate.lookahead]
                            if ahead >= 0 { update.prefetch(surfel: Int(ahead)) }
                        }
                        let id = ids[pix]
                        if id < 0 || Int(id) >= firstNew { continue }
                        let z = raw[pix]
                        guard z > 0, abs(idDepth[pix] - z) < agreement else { continue }
                        guard update.apply(surfel: Int(id), qPixel: qRow + columns[x], scratch: work) else { continue }
                        if m.labelUpdates[Int(id)] < UInt16.max { m.labelUpdates[Int(id)] += 1 }
                        updated += 1
                    }
                }
                counts[k] = updated
            }
        }}}}}
        let created = newPixels.count
        guard created > 0, firstNew + created == map.count else { return updatedPerChunk.reduce(0, +) }
        newPixels.withKernelInput { pixels in
        probabilities.values.withKernelInput { q in
        map.withKernelViews { m in
        updatedPerChunk.withKernelOutput { counts in
            let update = LabelUpdate(map: map, views: m, q: q, ranking: ranking, floor: parameters.probabilityFloor)
            ParallelFor.run(created, chunks: chunks, threads: parameters.threads) { k, surfels in
                let work = scratch.slice((k * scratchCount)..<((k + 1) * scratchCount))
                var updated = 0
                for j in surfels {
                    let pix = Int(pixels[j]), id = firstNew + j
                    guard update.apply(surfel: id, qPixel: rowsMap[pix / w] * pw + columns[pix % w], scratch: work) else { continue }
                    m.labelUpdates[id] = 1
                    updated += 1
                }
                counts[k] += updated
            }
        }}}}
        return updatedPerChunk.reduce(0, +)
    }

    /// Σ q and the classes of largest q of every pixel of the prediction, once per frame
    /// instead of once per surfel update.
    private func rankPredictions(_ probabilities: ClassProbabilityMap) {
        let n = probabilities.width * probabilities.height, c = probabilities.classCount
        let m = TopKBayesUpdate.rankingCount(kept: map.keptClasses, classCount: c)
        let chunks = parameters.threads
        predictionSum.resize(n, repeating: 0)
        predictionRanking.resize(n * m, repeating: 0)
        let sums = predictionSum.output, order = predictionRanking.output
        probabilities.values.withKernelInput { q in
            ParallelFor.run(n, chunks: chunks, threads: parameters.threads) { _, pixels in
                for i in pixels {
                    sums[i] = TopKBayesUpdate.rank(q.address(i * c), classCount: c, into: order.address(i * m), count: m)
                }
            }
        }
    }

    /// Byte log-codes (`LogCodeUpdate.encode`) of every pixel of the prediction, once per frame.
    private func encodePredictions(_ probabilities: ClassProbabilityMap) {
        let n = probabilities.width * probabilities.height, c = probabilities.classCount
        predictionSum.resize(n, repeating: 0)
        predictionCodes.resize(n * c, repeating: 0)
        let flags = predictionSum.output, codes = predictionCodes.output
        probabilities.values.withKernelInput { q in
            ParallelFor.run(n, chunks: parameters.threads, threads: parameters.threads) { _, pixels in
                for i in pixels {
                    flags[i] = LogCodeUpdate.encode(q.address(i * c), count: c, into: codes.address(i * c)) ? 1 : 0
                }
            }
        }
    }

    /// ElasticFusion's cleanup (reference §1, rules 1-4): rules 3 and 4 over all surfels, the
    /// neighbourhood tests of rules 1 and 2 over the surfels the post-fusion index map found in
    /// view (`IndexMap.inView`), using that map. Returns the number removed.
    private func cleanup(cameraFromWorld: RigidTransform) -> Int {
        let count = map.count
        if removeFlags.count != count {
            // Every flag is written below; resizing in place keeps the allocation frame to frame.
            removeFlags.removeAll(keepingCapacity: true)
            removeFlags.append(contentsOf: repeatElement(false, count: count))
        }
        var removedPerChunk = [Int](repeating: 0, count: parameters.threads * 2)
        let T = cameraFromWorld.float
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        let tick32 = Int32(clamping: tick)
        let timeDelta = Int32(clamping: parameters.timeDelta)
        let timeout = Int32(clamping: parameters.unstableTimeout)
        let threshold = parameters.confidenceThreshold
        let keep = parameters.keepConfidence ?? threshold
        // Per-pixel copies of what the neighbourhood tests read, so the 4x4 scans touch
        // contiguous memory instead of jumping through surfel indices.
        pixelInitTime.resize(n, repeating: 0)
        pixelStableDepth.resize(n, repeating: .nan)
        pixelStableXY.resize(n, repeating: .zero)
        let stableDepth = pixelStableDepth.output, pixelInit = pixelInitTime.output, stableXY = pixelStableXY.output
        postIndexMap.withKernelInputs { index in
        map.withKernelInputs { m in
            let ids = index.surfel, conf = m.confidences, lastSeen = m.lastSeen, initTimes = m.initTimes
            let idDepth = index.depth
            let positions = m.positions, normals = m.normals, radii = m.radii
            ParallelFor.run(n, chunks: parameters.threads, threads: parameters.threads) { _, range in
                for p in range {
                    let id = Int(ids[p])
                    guard id >= 0, conf[id] >= threshold else { stableDepth[p] = .nan; continue }
                    stableDepth[p] = lastSeen[id] == tick32 ? idDepth[p] : -idDepth[p]
                    pixelInit[p] = initTimes[id]
                    let c = T.apply(positions[id])
                    stableXY[p] = SIMD2(c.x, c.y)
                }
            }

            let window = CleanupWindow(stableDepth: stableDepth.input, pixelInit: pixelInit.input, stableXY: stableXY.input,
                                       width: w, height: h)
            removeFlags.withKernelOutput { flags in
            removedPerChunk.withKernelOutput { removedCounts in
                // Rules 4 and 3 over every surfel.
                ParallelFor.run(count, chunks: parameters.threads * 2, threads: parameters.threads) { chunk, range in
                    var removedHere = 0
                    for i in range {
                        let age = tick32 - lastSeen[i]
                        let unconfirmed = age <= timeDelta && age > timeout && conf[i] < keep   // not rule 4; rule 3
                        flags[i] = unconfirmed
                        if unconfirmed { removedHere += 1 }
                    }
                    removedCounts[chunk] = removedHere
                }
                // Rules 1 and 2 over the surfels the index map found in view (the others
                // cannot pass the view test below).
                let inView = postIndexMap.inView
                inView.withKernelInput { inView in
                ParallelFor.run(inView.count, chunks: parameters.threads * 2, threads: parameters.threads) { chunk, range in
                    var removedHere = 0
                    defer { removedCounts[chunk] += removedHere }
                    for j in range {
                        let i = Int(inView[j])
                        let age = tick32 - lastSeen[i]
                        if age > timeDelta || flags[i] { continue }                            // rules 4 and 3
                        let pc = T.apply(positions[i])
                        guard pc.z > 0 else { continue }
                        let u = fx * pc.x / pc.z + cx, v = fy * pc.y / pc.z + cy
                        guard u >= 0, v >= 0, u <= Float(w - 1), v <= Float(h - 1) else { continue }
                        let x0 = Int(u.rounded(.down)) - 1, y0 = Int(v.rounded(.down)) - 1
                        let facing = abs(T.rotate(normals[i]).z) > 0.85
                        let lateral2 = (1.4 * radii[i]) * (1.4 * radii[i])
                        let myInit = initTimes[i]
                        if window.removes(x0: x0, y0: y0, position: pc, facing: facing, lateral2: lateral2, initTime: myInit) {
                            flags[i] = true; removedHere += 1
                        }
                    }
                }
                }
            }}
        }}
        let removed = removedPerChunk.reduce(0, +)
        if removed > 0 {
            // The exposed post-fusion index map follows the compacted map when it is read.
            pendingRemap = (map.remove(where: removeFlags, removed: removed), removeFlags)
        }
        return removed
    }
}

/// The 4x4 neighbourhood tests of ElasticFusion's cleanup (reference §1, rules 1 and 2) around
/// one surfel, over the post-fusion index map's per-pixel copies.
struct CleanupWindow {
    /// Per pixel: the stable surfel's depth, positive if it was seen this frame, negative if
    /// not, NaN where no stable surfel shows.
    let stableDepth: KernelInput<Float>
    /// Per pixel: that surfel's creation time.
    let pixelInit: KernelInput<Int32>
    /// Per pixel: that surfel's camera-frame x and y (for the duplicates' lateral distance).
    let stableXY: KernelInput<SIMD2<Float>>
    let width: Int, height: Int

    /// Over the pixels x0...x0+3, y0...y0+3 inside the image: `duplicates`, stable surfels made
    /// earlier that lie 0-1 cm behind the surfel (camera-frame `position`, depth along the
    /// view) and within √lateral2 of it sideways; `violations`, when the surfel faces the
    /// camera, stable surfels seen this frame more than 1 cm behind it (it floats in front of
    /// observed surface). A window whose rows of four lie inside the image is tested four
    /// pixels at a time (`vectorised`), with the same arithmetic per pixel as the scalar loop,
    /// so the counts are identical (tested).
    @inline(__always)
    func counts(x0: Int, y0: Int, position pc: SIMD3<Float>, facing: Bool, lateral2: Float, initTime: Int32,
                vectorised: Bool = true) -> (duplicates: Int, violations: Int) {
        let w = width, h = height
        var duplicates = 0, violations = 0
        if vectorised, x0 >= 0, x0 + 3 < w {
            let z = SIMD4<Float>(repeating: pc.z), initLimit = SIMD4<Int32>(repeating: initTime)
            for yy in max(0, y0)...min(h - 1, y0 + 3) {
                addRow(yy * w + x0, z: z, initLimit: initLimit, position: pc, facing: facing, lateral2: lateral2,
                       duplicates: &duplicates, violations: &violations)
            }
            return (duplicates, violations)
        }
        for yy in max(0, y0)...min(h - 1, y0 + 3) {
            for xx in max(0, x0)...min(w - 1, x0 + 3) {
                let q = yy * w + xx
                // Stable neighbours only: NaN fails both depth tests.
                let shown = stableDepth[q]
                let behind = abs(shown) - pc.z
                if behind > 0, behind < 0.01, pixelInit[q] < initTime {
                    let pj = stableXY[q]
                    let dx = pj.x - pc.x, dy = pj.y - pc.y
                    if dx * dx + dy * dy < lateral2 { duplicates += 1 }
                }
                if facing, behind > 0.01, shown > 0 { violations += 1 }   // seen this frame
            }
        }
        return (duplicates, violations)
    }

    /// Rules 1 and 2's decision, `duplicates > 8 || violations > 4` over `counts`' window, but
    /// with the rows four pixels at a time stopping as soon as the rows left cannot change the
    /// answer. Most surfels keep their place, and once two rows hold no duplicate the other
    /// eight pixels cannot make nine; skipping those rows saves loads from planes that the
    /// surfels' scattered projections mostly miss in cache. Same decision as `counts` (tested).
    @inline(__always)
    func removes(x0: Int, y0: Int, position pc: SIMD3<Float>, facing: Bool, lateral2: Float, initTime: Int32) -> Bool {
        let w = width, h = height
        guard x0 >= 0, x0 + 3 < w else {
            let (duplicates, violations) = counts(x0: x0, y0: y0, position: pc, facing: facing, lateral2: lateral2,
                                                  initTime: initTime, vectorised: false)
            return duplicates > 8 || violations > 4
        }
        let z = SIMD4<Float>(repeating: pc.z), initLimit = SIMD4<Int32>(repeating: initTime)
        var duplicates = 0, violations = 0
        let last = min(h - 1, y0 + 3)
        for yy in max(0, y0)...last {
            addRow(yy * w + x0, z: z, initLimit: initLimit, position: pc, facing: facing, lateral2: lateral2,
                   duplicates: &duplicates, violations: &violations)
            if duplicates > 8 || violations > 4 { return true }
            let left = 4 * (last - yy)
            if duplicates + left <= 8 && (!facing || violations + left <= 4) { return false }
        }
        return false
    }

    /// Adds the two counts over the four pixels q...q+3 of one window row (all inside the image),
    /// four at a time with the scalar loop's arithmetic per pixel. `z` and `initLimit` are the
    /// surfel's depth and creation time in every lane.
    @inline(__always)
    private func addRow(_ q: Int, z: SIMD4<Float>, initLimit: SIMD4<Int32>, position pc: SIMD3<Float>, facing: Bool,
                        lateral2: Float, duplicates: inout Int, violations: inout Int) {
        let zero = SIMD4<Float>(), near = SIMD4<Float>(repeating: 0.01)
        let shown = UnsafeRawPointer(stableDepth.address(q)).loadUnaligned(as: SIMD4<Float>.self)
        // |shown| − z: clearing the sign bit is exactly `abs`, NaN included.
        let magnitude = unsafeBitCast(unsafeBitCast(shown, to: SIMD4<UInt32>.self) & 0x7FFF_FFFF, to: SIMD4<Float>.self)
        let behind = magnitude - z
        if facing { violations += Self.count((behind .> near) .& (shown .> zero)) }
        let older = UnsafeRawPointer(pixelInit.address(q)).loadUnaligned(as: SIMD4<Int32>.self) .< initLimit
        let candidates = (behind .> zero) .& (behind .< near) .& older
        guard any(candidates) else { return }
        let xy = UnsafeRawPointer(stableXY.address(q)).loadUnaligned(as: SIMD8<Float>.self)
        let dx = xy.evenHalf - SIMD4(repeating: pc.x), dy = xy.oddHalf - SIMD4(repeating: pc.y)
        duplicates += Self.count(candidates .& (dx * dx + dy * dy .< SIMD4(repeating: lateral2)))
    }

    /// Number of set lanes.
    @inline(__always) static func count(_ mask: SIMDMask<SIMD4<Int32>>) -> Int {
        Int(SIMD4<Int32>(repeating: 0).replacing(with: 1, where: mask).wrappedSum())
    }
}

/// One surfel's Bayesian update in whichever layout the map stores (`LabelStorage`).
struct LabelUpdate {
    let values: KernelOutput<Float>, classes: KernelOutput<UInt16>, codes: KernelOutput<UInt8>
    let q: KernelInput<Float>, ranking: PredictionRanking
    let classCount: Int, kept: Int, slots: Int, codeSlots: Int
    let floor: Float, uniform: Float

    /// `ranking` is read by top-k storage only (`SurfelFusion.rankPredictions`).
    init(map: SurfelMap, views: SurfelMap.KernelViews, q: KernelInput<Float>, ranking: PredictionRanking, floor: Float) {
        values = views.labelValues; classes = views.labelClasses; codes = views.labelCodes; self.q = q; self.ranking = ranking
        classCount = map.classCount; kept = map.keptClasses; slots = map.labelSlots; codeSlots = map.codeSlots
        self.floor = floor; uniform = 1 / Float(map.classCount)
    }

    /// Pixels ahead whose surfel the label pass prefetches.
    static let lookahead = 8

    /// Starts loading surfel `i`'s class distribution.
    @inline(__always)
    func prefetch(surfel i: Int) {
        if codeSlots > 0 {
            codes.prefetch(i * codeSlots)
            if codeSlots > 32 { codes.prefetch(i * codeSlots + codeSlots - 1) }
            return
        }
        let start = i * slots
        values.prefetch(start)
        values.prefetch(start + slots - 1)
        if kept > 0 {
            classes.prefetch(i * kept)
        } else if slots > 32 {
            values.prefetch(start + slots / 2)
        }
    }

    /// Fuses the distribution of prediction pixel `qPixel` into surfel `i`; false when it carried
    /// no evidence.
    @inline(__always)
    func apply(surfel i: Int, qPixel: Int, scratch: KernelOutput<Float>) -> Bool {
        if codeSlots > 0 {
            guard ranking.sum[qPixel] > 0 else { return false }
            LogCodeUpdate.apply(codes.address(i * codeSlots), ranking.codes.address(qPixel * codeSlots), count: codeSlots)
            return true
        }
        if kept == 0 {
            return BayesUpdate.apply(values.address(i * slots), q.address(qPixel * classCount), count: classCount,
                                     floor: floor, uniform: uniform)
        }
        return TopKBayesUpdate.apply(ids: classes.address(i * kept), p: values.address(i * slots), kept: kept,
                                     q: q.address(qPixel * classCount), classCount: classCount,
                                     qSum: ranking.sum[qPixel], order: ranking.order.address(qPixel * ranking.count),
                                     orderCount: ranking.count, floor: floor, scratch: scratch.base)
    }
}

/// Per pixel of a class prediction: Σ q, and the `count` classes of largest q, largest first
/// (top-k storage); or whether it carries evidence and its byte log-codes (log-code storage).
struct PredictionRanking {
    let sum: KernelInput<Float>, order: KernelInput<UInt16>, count: Int
    let codes: KernelInput<UInt8>
}


/// The per-surfel Bayesian update kernel, p ← normalise(max(normalise(p ⊙ q), floor)).
enum BayesUpdate {
    /// Returns false (and leaves `p` unchanged) when `q` carries no evidence. Falls back to the
    /// uniform distribution when the product underflows or is not finite (SemanticFusion's
    /// reset). Eight classes at a time when the class count allows.
    @inline(__always)
    static func apply(_ p: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, count c: Int,
                      floor: Float, uniform: Float) -> Bool {
        if c % 8 == 0 {
            let p8 = UnsafeMutableRawPointer(p), q8 = UnsafeRawPointer(q)
            var evidence = SIMD8<Float>(), sum = SIMD8<Float>()
            for k in stride(from: 0, to: c, by: 8) {
                let qv = q8.loadUnaligned(fromByteOffset: k * 4, as: SIMD8<Float>.self)
                let pv = p8.loadUnaligned(fromByteOffset: k * 4, as: SIMD8<Float>.self)
                evidence += qv
                sum += pv * qv
            }
            guard evidence.sum() > 0 else { return false }
            let total = sum.sum()
            guard total > 1e-30, total.isFinite else {
                for k in 0..<c { p[k] = uniform }
                return true
            }
            let inv = SIMD8<Float>(repeating: 1 / total), fl = SIMD8<Float>(repeating: floor)
            var resum = SIMD8<Float>()
            for k in stride(from: 0, to: c, by: 8) {
                let qv = q8.loadUnaligned(fromByteOffset: k * 4, as: SIMD8<Float>.self)
                let pv = p8.loadUnaligned(fromByteOffset: k * 4, as: SIMD8<Float>.self)
                var v = pv * qv * inv
                v.replace(with: fl, where: v .< fl)
                p8.storeBytes(of: v, toByteOffset: k * 4, as: SIMD8<Float>.self)
                resum += v
            }
            let inv2 = SIMD8<Float>(repeating: 1 / resum.sum())
            for k in stride(from: 0, to: c, by: 8) {
                let v = p8.loadUnaligned(fromByteOffset: k * 4, as: SIMD8<Float>.self) * inv2
                p8.storeBytes(of: v, toByteOffset: k * 4, as: SIMD8<Float>.self)
            }
            return true
        }
        var evidence: Float = 0, total: Float = 0
        for k in 0..<c {
            evidence += q[k]
            total += p[k] * q[k]
        }
        guard evidence > 0 else { return false }
        guard total > 1e-30, total.isFinite else {
            for k in 0..<c { p[k] = uniform }
            return true
        }
        let inv = 1 / total
        var resum: Float = 0
        for k in 0..<c {
            let v = max(p[k] * q[k] * inv, floor)
            p[k] = v
            resum += v
        }
        let inv2 = 1 / resum
        for k in 0..<c { p[k] *= inv2 }
        return true
    }
}
