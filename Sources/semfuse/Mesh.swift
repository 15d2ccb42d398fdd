import ArgumentParser
import Export
import Foundation
import Imaging
import Logging
import Mapping
import Meshing
import Pipeline
import Semantics
import Sequences

/// `semfuse mesh`: a triangle mesh from a surfel map that `semfuse reconstruct` wrote.
struct Mesh: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn a surfel map (PLY) into a semantic triangle mesh.",
        discussion: """
        Each surfel writes its signed distance along its normal into a sparse voxel volume \
        (weighted by its confidence and a Gaussian of the distance from its centre); marching \
        cubes extracts the surface where the volume was observed, and coarsens it where the \
        surfels are sparser than the voxels (--coarsen). Every vertex takes the \
        confidence-weighted fusion of the class probabilities of the surfels around it \
        (label, label_confidence, colour): of the surfels whose discs contain it, which is the \
        label the map shows there, or of its neighbourhood where no disc does. Needs normals \
        (nx ny nz); uses radius (without it, each point's disc reaches its 6th nearest \
        neighbour), confidence, labels, prob_* and red green blue when present, so any oriented \
        point cloud can be meshed (without labels or colours, the mesh carries geometry and \
        normals only). See docs/meshing.md.
        """)

    @Argument(help: "Surfel map: a PLY written by 'semfuse reconstruct', or any point cloud PLY with normals.")
    var map: String

    @Option(name: .shortAndLong, help: "Output mesh PLY. Default: <map>.mesh.ply")
    var output: String?

    @Option(help: "Voxel edge in metres. Default: 0.85 times the median surfel radius (within 2 mm - 5 cm); labels and colours are fused at the radius's own scale.")
    var voxelSize: Double?

    @Option(help: ArgumentHelp("Coarsen the mesh where it is denser than its surfels, towards edges this many times the local spacing of the surfels (0: keep marching cubes' even spread). Default: 1.", discussion: "Marching cubes puts a vertex or two in every voxel of surface, as many on a far wall seen by a few frames as on a table top seen close up in every frame. Where the surfels are sparser than the voxels, short edges are collapsed, keeping the surface within a quarter voxel (root mean square) and the borders on their line. See docs/meshing.md."))
    var coarsen: Double?

    @Option(help: "Vertex colours: 'semantic' (class palette of the fused label), 'rgb' (surfel colours; needs a map written with --color rgb) or 'none' (no colour properties). Default: semantic when the map has labels, else rgb when it has colours, else none.")
    var color: String?

    @Flag(help: "Also write the fused class probabilities per vertex (prob_0 ...); needs a map written with --probabilities.")
    var probabilities = false

    @Option(help: "Also write one mesh per class into this folder (<id>-<name>.ply).")
    var meshPerClass: String?

    @Flag(help: "Write ASCII PLY instead of binary little-endian.")
    var ascii = false

    @Flag(inversion: .prefixedNo, help: "Write <output>.preview.png, a rendering of the mesh.")
    var preview = true

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let color, MeshColor(rawValue: color) == nil { throw ValidationError("--color must be 'semantic', 'rgb' or 'none'") }
        if let problem = voxelSize.flatMap({ InputLimits.check($0, "--voxel-size", in: InputLimits.voxelSize, unit: " m") }) { throw ValidationError(problem) }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let problem = coarsen.flatMap({ InputLimits.check($0, "--coarsen", in: InputLimits.meshCoarsening) }) { throw ValidationError(problem) }
    }

    func run() throws {
        logging.bootstrap()
        let input = URL(fileURLWithPath: map)
        let cloud = try Self.readMap(input)
        if probabilities && cloud.classProbabilities == nil {
            throw CLIError("\(input.path): --probabilities needs prob_0 ... per point (reconstruct with --probabilities)")
        }
        let hasLabels = cloud.labels != nil || cloud.classProbabilities != nil
        let output = self.output.map { URL(fileURLWithPath: $0) } ?? input.deletingPathExtension().appendingPathExtension("mesh.ply")
        var request = MeshRequest(output: output)
        request.parameters = MeshingParameters(voxelSize: voxelSize.map(Float.init), threads: threads ?? defaultThreadCount)
        if let coarsen { request.parameters.coarsening = Float(coarsen) }
        request.color = color.flatMap(MeshColor.init(rawValue:))
            ?? .automatic(hasLabels: hasLabels, hasClassSet: cloud.classSet != nil, hasColors: cloud.colors != nil)
        if request.color == .semantic && (!hasLabels || cloud.classSet == nil) {
            throw CLIError("\(input.path): --color semantic needs labels and a 'class_set' comment, as semfuse writes them; use --color rgb")
        }
        request.includeProbabilities = probabilities
        request.ascii = ascii
        if preview { request.preview = output.deletingPathExtension().appendingPathExtension("preview.png") }
        // The map is read first, so writing over it would silently replace it with the mesh.
        var outputs: [(role: String, url: URL)] = [("input map", input), ("mesh (-o)", output)]
        if let preview = request.preview { outputs.append(("mesh preview (<mesh>.preview.png)", preview)) }
        try FileData.checkDistinctOutputs(outputs)
        for (_, url) in outputs.dropFirst() { _ = try FileData.checkOutputFile(url) }
        request.perClassDirectory = meshPerClass.map { URL(fileURLWithPath: $0, isDirectory: true) }
        var lines = try MeshWriter.write(cloud, source: input.path, request: request, comments: ["meshed from \(input.lastPathComponent)"])
        if color == nil, request.color == .none {
            lines.append("  \(input.lastPathComponent) has neither labels nor colours: the mesh has positions and normals only")
        }
        print(lines.joined(separator: "\n"))
    }

    /// A surfel map as `semfuse reconstruct` wrote it: the points and their attributes, and the
    /// class set named by its `class_set` comment (labels mean nothing without it).
    static func readMap(_ url: URL) throws -> PointCloud {
        let file = try PLYReader.read(url)
        var cloud = file.pointCloud()
        if let name = file.comments.first(where: { $0.hasPrefix("class_set ") }).map({ String($0.dropFirst("class_set ".count)) }) {
            cloud.classSet = ClassSet.named(name)
        }
        return cloud
    }
}
