import Geometry

/// The accepted range of every numeric value a user or a file gives the pipeline, in one place.
///
/// Out-of-range values used to run to an empty map with exit 0 (`--depth-scale 0`, a manifest
/// `depth_scale: 1e308`, `--confidence-threshold nan`). Each check here returns the sentence to
/// show (nil when the value is fine); the command line turns it into a usage error and the
/// readers into a `SequenceError` naming the file. The ranges are wide enough for every real
/// sensor and dataset and exclude only values that cannot give a meaningful map.
public enum InputLimits {
    /// Integer depth units per metre. 1 (depth stored in metres, the coarsest sensible unit) to
    /// 100000 (10 µm units, where a 16-bit image only reaches 0.65 m); datasets use 1000
    /// (7-Scenes, Kinect mm) and 5000 (TUM, ICL-NUIM, NYU).
    public static let depthScale: ClosedRange<Double> = 1...100_000
    /// Surfel confidence at which a surfel counts as stable. Each fused measurement adds at most
    /// 1, so values above the frame count are never reached; 0 keeps every surfel.
    public static let confidenceThreshold: ClosedRange<Double> = 0...100_000
    /// Farthest depth fused, metres: above the 0.3 m near limit of RGB-D sensors (ElasticFusion's
    /// minimum depth), up to 100 m, beyond any RGB-D sensor's range.
    public static let maxDepth: ClosedRange<Double> = 0.3...100
    /// Weight of the photometric tracking term against ICP (both normalised by their noise).
    public static let photometricWeight: ClosedRange<Double> = 0...1000
    /// Mesh voxel edge, metres: from 0.1 mm (finer than any depth sensor resolves) to 10 m.
    public static let voxelSize: ClosedRange<Double> = 0.0001...10
    /// Mesh coarsening, edges as a multiple of the local surfel spacing (0 keeps marching cubes'
    /// mesh); beyond 100 a single edge would span a hundred surfels.
    public static let meshCoarsening: ClosedRange<Double> = 0...100
    /// Worker threads.
    public static let threads: ClosedRange<Int> = 1...1024
    /// Frames a surfel stays active unseen: at least 2 (the checkerboard touches each pixel every
    /// other frame); at most 10^6 (about nine hours at 30 frames/s; ElasticFusion's open loop).
    public static let timeWindow: ClosedRange<Int> = 2...1_000_000
    /// `--model-warmup` frames (0: none).
    public static let modelWarmup: ClosedRange<Int> = 0...1_000_000
    /// Focal lengths in pixels: below 1 px a pixel spans more than 45 degrees; above 100000 px
    /// (a 0.4-degree field of view at 640 px) no RGB-D camera exists.
    public static let focalLength: ClosedRange<Double> = 1...100_000
    /// Image width and height in pixels.
    public static let imageSide: ClosedRange<Int> = 1...16_384

    /// nil when `value` is finite and within `range`, else the message. `exclusiveLower` makes
    /// the lower bound itself invalid.
    public static func check(_ value: Double, _ name: String, in range: ClosedRange<Double>, exclusiveLower: Bool = false,
                             unit: String = "") -> String? {
        let low = exclusiveLower ? value > range.lowerBound : value >= range.lowerBound
        if value.isFinite, low, value <= range.upperBound { return nil }
        let bounds = "\(exclusiveLower ? "(" : "[")\(format(range.lowerBound)), \(format(range.upperBound))]\(unit)"
        return "\(name) is \(format(value)), expected a finite number in \(bounds)"
    }

    public static func check(_ value: Int, _ name: String, in range: ClosedRange<Int>) -> String? {
        range.contains(value) ? nil : "\(name) is \(value), expected \(range.lowerBound) to \(range.upperBound)"
    }

    public static func depthScale(_ value: Double, _ name: String = "--depth-scale") -> String? {
        check(value, name, in: depthScale, unit: " units per metre")
    }

    /// Camera intrinsics: finite, focal lengths in range, principal point on the image.
    ///
    /// Signs: fx must be positive; fy may be negative. A negative fy is a y-up image convention
    /// (ICL-NUIM's renderer publishes fy = −480) and back-projects each pixel to where that
    /// dataset's poses expect it. No camera or dataset uses a negative fx: it would silently
    /// mirror the map left-right, so it is refused (flip the images instead).
    public static func intrinsics(_ k: Intrinsics) -> String? {
        if let problem = check(k.width, "width", in: imageSide) ?? check(k.height, "height", in: imageSide) { return problem }
        guard k.fx.isFinite, k.fy.isFinite, k.cx.isFinite, k.cy.isFinite else { return "non-finite value in \(k)" }
        if k.fx < 0 {
            return "fx = \(format(k.fx)) is negative, which mirrors the map left-right; only fy may be negative (y-up images such as ICL-NUIM's)"
        }
        if let problem = check(k.fx, "fx", in: focalLength) ?? check(abs(k.fy), "|fy|", in: focalLength) { return problem }
        // The principal point lies on the image (with a one-image margin for off-centre crops).
        if let problem = check(k.cx, "cx", in: -Double(k.width)...(2 * Double(k.width)))
            ?? check(k.cy, "cy", in: -Double(k.height)...(2 * Double(k.height))) {
            return problem + " (the principal point must lie near the \(k.width)x\(k.height) image)"
        }
        return nil
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v > 0 ? "inf" : "-inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
