/// Parameters of surfel fusion. Defaults are ElasticFusion's (reference notes §1-2).
public struct FusionParameters: Sendable, Equatable {
    /// Surfels with confidence at or above this are stable (EF `-c`).
    public var confidenceThreshold: Float = 10
    /// Confidence a surfel needs to appear in the model prediction the tracker aligns to
    /// (nil: `confidenceThreshold`, as ElasticFusion), once the map is older than
    /// `trackingModelWarmup`.
    public var trackingConfidenceThreshold: Float? = nil
    /// Frames over which that confidence rises linearly from 0 to its full value: the tracker of
    /// a young map aligns to everything fused so far, and only from this many frames on to the
    /// stable surfels alone. ElasticFusion (0 here) requires the stable threshold from the first
    /// frame, when nothing is stable yet, so a young map is tracked against its last live frame
    /// and whatever few surfels have become stable: on the 7-Scenes kitchen's ten 50-frame
    /// slices the median ATE was 9.1 mm that way and 6.2 mm with 200 frames (PNG-50 17.6 against
    /// 4.7 mm), and frames 0-499 27.7 against 25.6 mm (docs/results.md, "A tracking model that
    /// grows with the map").
    public var trackingModelWarmup: Int = 200
    /// Photometric tracking's model colours come from the disc centred nearest to each pixel on
    /// the front surface, not from the front disc alone, when the focal length is below this
    /// (pixels): where pixels are coarse, a front disc that is a neighbour's shifts the colours
    /// by a pixel, a wide angle. On the synthetic sequences at 224x168 and 320x240 (focal
    /// 205-293 px) that took the ATE from 2.86-4.85 to 1.94-2.90 mm, and the first 500 frames of
    /// a long loop from 7.1 to 6.2; at 640x480 (585 px) it changed nothing measurable (1.47 →
    /// 1.50, 1.32 → 1.38 mm) and cost 10-15 % more tracking time (docs/results.md, "Model colour
    /// from the nearest disc centre"). 0 turns it off, infinity on at every size.
    public var nearestCentreColorMaxFocal: Double = 400
    /// Depth beyond this is ignored (EF `-d`, 3 m; SemanticFusion runs EF with 8 m).
    public var maxDepth: Float = 3
    /// Depth below this is ignored (EF's hard-coded 0.3 m).
    public var minDepth: Float = 0.3
    /// Frames since last seen before a surfel leaves the active window (EF `-t`).
    public var timeDelta: Int = 200
    /// Association: distance along the ray between model and measurement.
    public var associationDistance: Float = 0.05
    /// Association: model normals with |n_z| below this pass the normal test unconditionally.
    public var associationNormalZ: Float = 0.75
    /// Association: maximum angle between model and measured normal (radians).
    public var associationAngle: Float = 0.5
    /// Geometry is averaged only if the new radius is below this factor of the old one.
    public var radiusMergeFactor: Float = 1.5
    /// Bilateral filter for normals and radii: window side, spatial and range sigma (metres).
    public var bilateralWindow: Int = 13
    public var bilateralSigmaSpace: Float = 4.5
    public var bilateralSigmaRange: Float = 0.03
    /// Confidence weight: exp(-(r/maxRadialDistance)^2 / (2 sigma^2)), r in pixels at 640 wide.
    public var maxRadialDistance: Float = 400
    public var weightTwoSigmaSquared: Float = 0.72
    /// Cleanup: an unstable surfel not seen for this many frames is deleted.
    public var unstableTimeout: Int = 20
    /// Cleanup: confidence that spares a surfel from the timeout rule above (nil:
    /// `confidenceThreshold`, ElasticFusion's rule). Lower, it keeps surface that several frames
    /// agreed on but that left the view before becoming stable, which on short sequences is most
    /// of the surface.
    public var keepConfidence: Float? = nil
    /// Process only the ElasticFusion checkerboard (u%2 == v%2 == tick%2) after the first frame.
    public var checkerboard: Bool = true
    /// Surfels further than this from the camera are not drawn into the index map.
    public var maxIndexDepth: Float = 20
    /// Label fusion: a surfel is updated only where measured depth agrees with it to this
    /// distance, so a pixel of a new occluder does not relabel the surface behind it.
    public var labelDepthAgreement: Float = 0.05
    /// Label fusion: every class probability is kept at or above this after normalising, so a
    /// class driven to zero by Float32 underflow can still recover with new evidence. The
    /// `dense` and `top<k>` storages use it; `log8` has its floor built into its code range
    /// (10⁻⁶ of the most likely class).
    public var probabilityFloor: Float = 1e-6
    /// Label fusion: how each surfel's class distribution is stored (`LabelStorage`; the
    /// default, `automatic`, resolves by class count).
    public var labelStorage: LabelStorage = .standard
    /// Every this many frames the map is put in spatial order (`SurfelMap.sortSpatially`), so the
    /// per-frame kernels keep reading it in cache-friendly order as it grows; 0 never. Sorting
    /// changes no surfel; later exact ties (equal depth bits at a pixel) go to the lower index,
    /// which now names another surfel, so the map differs in a few bits, not in quality.
    public var spatialOrderInterval: Int = 25
    /// Cube size of that order (metres; widened so 1,024 cubes span the map).
    public var spatialOrderCell: Float = 0.04
    /// Worker threads for the per-frame kernels.
    public var threads: Int = defaultThreadCount

    public init() {}
}

extension FusionParameters {
    /// The confidence a surfel needs to be in the model the tracker aligns to, `tick` frames
    /// into the map (`trackingModelWarmup`).
    public func trackingModelConfidence(tick: Int) -> Float {
        let full = trackingConfidenceThreshold ?? confidenceThreshold
        guard trackingModelWarmup > 0, tick < trackingModelWarmup else { return full }
        return full * Float(max(tick, 0)) / Float(trackingModelWarmup)
    }
}
