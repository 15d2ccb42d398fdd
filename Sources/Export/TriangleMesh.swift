/// A triangle mesh as PLY files hold it: a vertex element with per-vertex attributes (the same
/// columns a `PointCloud` has) and a face element of vertex index triples.
public struct TriangleMesh: Sendable {
    public var vertices: PointCloud
    /// Counter-clockwise seen from the side the vertex normals point to.
    public var faces: [SIMD3<UInt32>]

    public init(vertices: PointCloud, faces: [SIMD3<UInt32>]) {
        self.vertices = vertices
        self.faces = faces
    }

    public var isEmpty: Bool { faces.isEmpty }

    /// Why the mesh cannot be written, if it cannot.
    public func validationProblem() -> String? {
        if let problem = vertices.validationProblem() { return problem }
        let n = UInt32(clamping: vertices.count)
        if let bad = faces.firstIndex(where: { $0.x >= n || $0.y >= n || $0.z >= n }) {
            return "face \(bad) refers to a vertex beyond the \(vertices.count) vertices"
        }
        return nil
    }
}
