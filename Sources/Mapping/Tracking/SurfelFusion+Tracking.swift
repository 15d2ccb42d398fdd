import Foundation
import Geometry
import Imaging

extension SurfelFusion {
    /// Vertex/normal pyramid of a live depth frame (range cut and bilateral filter as for fusion).
    /// Call `acceptLiveFrame` with it once it is known to be good (tracked), so a failed frame
    /// never fills the next prediction's holes.
    public func livePyramid(depth: DepthImage, levels: Int = 3) -> [VertexNormalMap] {
        liveFrame(depth: depth, levels: levels).pyramid
    }

    /// The live pyramid and the filtered depth it came from (pass that to `integrate` so the
    /// frame is not filtered twice).
    public func liveFrame(depth: DepthImage, levels: Int = 3) -> (pyramid: [VertexNormalMap], filteredDepth: [Float]) {
        let lo = parameters.minDepth, hi = parameters.maxDepth
        let cut = depth.map { z -> Float in z.isFinite && z >= lo && z <= hi ? z : 0 }
        var filtered = [Float]()
        BilateralFilter(window: parameters.bilateralWindow, sigmaSpace: parameters.bilateralSigmaSpace,
                        sigmaRange: parameters.bilateralSigmaRange).apply(cut, into: &filtered, threads: parameters.threads)
        return (VertexNormalMap.pyramid(depth: filtered, intrinsics: intrinsics, levels: levels, threads: parameters.threads), filtered)
    }

    /// Remembers a tracked live frame (and its intensity) for filling holes in the next prediction.
    public func acceptLiveFrame(_ live: [VertexNormalMap], intensity: [IntensityMap]? = nil) {
        lastLiveFrame = live.first
        lastLiveIntensity = intensity?.first?.intensity
    }

    /// The live frame's intensity pyramid for photometric tracking.
    public func liveIntensity(color: ColorImage, levels: Int = 3) -> [IntensityMap] {
        IntensityMap.pyramid(intensity: IntensityMap.luma(color), width: color.width, height: color.height, levels: levels,
                             threads: parameters.threads)
    }

    /// The model as the tracker sees it from `pose`: active surfels of at least
    /// `FusionParameters.trackingModelConfidence(tick:)` (the stable ones once the map is older
    /// than its warm-up) splatted into vertex and normal maps (camera frame of `pose`). If fewer
    /// than 75 % of a 32x24 grid of pixels are covered, holes are filled from the last live frame
    /// (ElasticFusion's FillIn).
    public func predictedPyramid(from pose: RigidTransform, levels: Int = 3) -> [VertexNormalMap] {
        predictedModel(from: pose, levels: levels, intensity: false).geometry
    }

    /// The prediction with the model's intensity (surfel colours splatted like the geometry,
    /// holes filled from the last live frame by the same rule) for photometric tracking. Below
    /// `FusionParameters.nearestCentreColorMaxFocal` each pixel takes the colour of the disc
    /// centred nearest to it on the front surface (`SurfelRenderer.render(colorNoise:)`).
    /// `fillHoles: false` skips the fill from the last live frame: a relocalisation hypothesis is
    /// far from where that frame was taken. `minimumConfidence` overrides which surfels are drawn
    /// (default: those tracking uses). `activeOnly: false` draws the inactive surface too (the
    /// whole map, as when two maps are registered to each other after the run).
    public func predictedModel(from pose: RigidTransform, levels: Int = 3, intensity: Bool = true, fillHoles: Bool = true,
                               minimumConfidence: Float? = nil, activeOnly: Bool = true)
        -> (geometry: [VertexNormalMap], intensity: [IntensityMap]?) {
        let render = SurfelRenderer().render(map, cameraFromWorld: pose.inverse, intrinsics: intrinsics,
                                             selection: .init(minimumConfidence: minimumConfidence ?? parameters.trackingModelConfidence(tick: tick),
                                                              activeWithin: activeOnly ? parameters.timeDelta : nil, tick: tick),
                                             colorNoise: intensity && Double(intrinsics.fx) < parameters.nearestCentreColorMaxFocal ? .kinect : nil,
                                             threads: parameters.threads)
        var vertices = render.vertices, normals = render.normals
        let w = intrinsics.width, h = intrinsics.height
        var grey: [Float] = []
        if intensity {
            grey = [Float](repeating: 0, count: w * h)
            let colors = map.colors
            for p in 0..<(w * h) where render.surfel[p] >= 0 {
                let c = colors[Int(render.colorSurfel.isEmpty ? render.surfel[p] : render.colorSurfel[p])]
                grey[p] = max(1, 0.299 * Float(c.r) + 0.587 * Float(c.g) + 0.114 * Float(c.b))
            }
        }
        if fillHoles, render.gridCoverage < 0.75, let live = lastLiveFrame {
            let liveGrey = intensity ? lastLiveIntensity : nil
            for p in 0..<(w * h) where render.surfel[p] < 0 {
                vertices[p] = live.vertices[p]
                normals[p] = live.normals[p]
                if let liveGrey, live.vertices[p].z > 0 { grey[p] = liveGrey[p] }
            }
        }
        let maps = VertexNormalMap(intrinsics: intrinsics, vertices: vertices, normals: normals).pyramid(levels: levels, threads: parameters.threads)
        return (maps, intensity ? IntensityMap.pyramid(intensity: grey, width: w, height: h, levels: levels, threads: parameters.threads) : nil)
    }
}
