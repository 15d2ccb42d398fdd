import Export
import Foundation
import Geometry
import Imaging
import Meshing
import Semantics

/// What `reconstruct --mesh` and `semfuse mesh` ask for.
public struct MeshRequest: Sendable {
    public var output: URL
    /// Also write one mesh per class into this folder (`<id>-<name>.ply`).
    public var perClassDirectory: URL?
    public var parameters = MeshingParameters()
    public var color = MeshColor.semantic
    public var includeProbabilities = false
    public var ascii = false
    /// Also render the mesh to this PNG, from the overview of `previewTrajectory` if given.
    public var preview: URL?
    public var previewTrajectory: [RigidTransform] = []

    public init(output: URL) { self.output = output }
}

/// Meshes a surfel cloud and writes the mesh (and optionally one per class) as PLY.
public enum MeshWriter {
    /// Returns the summary lines. An empty mesh (no surfels, or too few to form a surface) is
    /// written as a valid PLY with zero faces and said so, not treated as an error.
    public static func write(_ cloud: PointCloud, source: String, request: MeshRequest, comments: [String] = []) throws -> [String] {
        if cloud.normals == nil { throw MeshingError.missingNormals(source: source) }
        if request.color == .rgb && cloud.colors == nil {
            throw PipelineError.invalidOption("\(source): --color rgb needs red green blue per point")
        }
        let (mesh, report) = try SurfelMesher.mesh(cloud, source: source, parameters: request.parameters,
                                                   colorMode: request.color, includeProbabilities: request.includeProbabilities)
        let format: PLYWriter.Format = request.ascii ? .ascii : .binaryLittleEndian
        let voxelMillimetres = String(format: "%.1f", report.voxelSize * 1000)
        let header = comments + ["mesh from \(report.surfelsUsed) surfels, voxel \(voxelMillimetres) mm"]
        try PLYWriter.write(mesh, to: request.output, format: format, comments: header)
        var lines: [String] = []
        let properties = mesh.vertices.propertyNames.joined(separator: " ")
        if mesh.isEmpty {
            lines.append("Wrote \(request.output.path): an empty mesh (\(report.surfelsUsed) usable surfels form no surface at voxel \(voxelMillimetres) mm)")
        } else {
            lines.append("Wrote \(request.output.path): mesh of \(mesh.vertices.count) vertices, \(mesh.faces.count) triangles, \(format == .ascii ? "ASCII" : "binary") PLY")
            lines.append("  vertex properties: \(properties)")
        }
        let seconds = report.seconds.volume + report.seconds.surface + report.seconds.attributes
        lines.append(String(format: "  meshing: voxel %@ mm (%@), %d blocks (%.0f MB), %.2f s (volume %.2f, surface %.2f, attributes %.2f)",
                            voxelMillimetres, request.parameters.voxelSize == nil ? "from the median surfel radius" : "given",
                            report.blocks, Double(report.volumeBytes) / 1e6, seconds,
                            report.seconds.volume, report.seconds.surface, report.seconds.attributes))
        if let estimate = report.estimatedRadii {
            lines.append(String(format: "  radii: none in the map; each point's is the distance to its %dth nearest neighbour (median %.1f mm, %.2f s)",
                                SurfelMesher.radiusNeighbour, estimate.median * 1000, estimate.seconds))
        }
        if report.surfelsSkipped > 0 {
            let normals = report.surfelsWithoutUnitNormal, confidence = report.surfelsSkipped - normals
            var reasons: [String] = []
            if normals > 0 { reasons.append("\(normals) without a unit-length normal (zero, not finite, or scaled: normalise them first)") }
            if confidence > 0 { reasons.append("\(confidence) of zero confidence") }
            lines.append("  \(report.surfelsSkipped) surfels skipped: " + reasons.joined(separator: ", "))
        }
        if report.facesTrimmed > 0 {
            lines.append("  \(report.facesTrimmed) triangle\(report.facesTrimmed == 1 ? "" : "s") trimmed beyond the surfels' discs")
        }
        if report.coarseningSkippedBytes > 0 {
            lines.append("  not coarsened: that would need about \(report.coarseningSkippedBytes >> 20) MiB, over the meshing memory limit of \(request.parameters.memoryLimitBytes >> 20) MiB (the mesh keeps marching cubes' even spread)")
        }
        if report.verticesCollapsed > 0, let factor = request.parameters.coarsening {
            lines.append("  \(report.verticesCollapsed) vertices collapsed where the surfels are sparser than the voxels (--coarsen \(String(format: "%g", factor)))")
        }
        if report.facesDropped > 0 {
            lines.append("  \(report.facesDropped) triangle\(report.facesDropped == 1 ? "" : "s") dropped in pieces of fewer than \(report.minimumComponentFaces)")
        }
        if let url = request.preview, let image = MeshPreview.render(mesh, trajectory: request.previewTrajectory) {
            try PNGCodec.writeRGB(image, to: url)
            lines.append("Wrote \(url.path): rendering of the mesh")
        }
        if let directory = request.perClassDirectory {
            lines += try writePerClass(mesh, classSet: cloud.classSet, directory: directory, format: format, comments: header)
        }
        return lines
    }

    /// One file per class present: the faces whose vertices mostly carry that label (the most
    /// confident vertex decides when all three differ), with their vertices renumbered.
    static func writePerClass(_ mesh: TriangleMesh, classSet: ClassSet?, directory: URL, format: PLYWriter.Format,
                              comments: [String]) throws -> [String] {
        guard let labels = mesh.vertices.labels else {
            throw PipelineError.invalidOption("\(directory.path): --mesh-per-class needs labels; the map has none")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw PipelineError.invalidOption("\(directory.path): cannot create folder: \(error.localizedDescription)")
        }
        let confidence = mesh.vertices.labelConfidence ?? [Float](repeating: 1, count: labels.count)
        var facesOfClass: [Int32: [Int]] = [:]
        for (i, f) in mesh.faces.enumerated() {
            let a = labels[Int(f.x)], b = labels[Int(f.y)], c = labels[Int(f.z)]
            let label: Int32
            if a == b || a == c { label = a } else if b == c { label = b } else {
                let best = [f.x, f.y, f.z].max { confidence[Int($0)] < confidence[Int($1)] }!
                label = labels[Int(best)]
            }
            facesOfClass[label, default: []].append(i)
        }
        var lines: [String] = []
        for label in facesOfClass.keys.sorted() {
            let faces = facesOfClass[label]!
            var remap = [Int32](repeating: -1, count: mesh.vertices.count)
            var kept: [Int] = []
            var newFaces: [SIMD3<UInt32>] = []
            newFaces.reserveCapacity(faces.count)
            for i in faces {
                var f = mesh.faces[i]
                for c in 0..<3 {
                    let v = Int(f[c])
                    if remap[v] < 0 { remap[v] = Int32(kept.count); kept.append(v) }
                    f[c] = UInt32(remap[v])
                }
                newFaces.append(f)
            }
            let part = TriangleMesh(vertices: mesh.vertices.subset(kept), faces: newFaces)
            let name = label < 0 ? "unlabelled" : (classSet.map { "\(label)-" + $0.classes[Int(label)].name.replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "/", with: "_") } ?? "\(label)")
            let url = directory.appendingPathComponent("\(name).ply")
            try PLYWriter.write(part, to: url, format: format, comments: comments + ["class \(name)"])
            lines.append("  \(url.path): \(newFaces.count) triangles")
        }
        return ["Wrote \(facesOfClass.count) per-class meshes to \(directory.path):"] + lines
    }
}
