import ArgumentParser
import Export
import Foundation
import Meshing
import Pipeline
import Sequences

/// `semfuse bench mesh`: how long meshing a surfel map takes, per 100k surfels.
struct MeshBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "Meshing speed on a surfel map (PLY written by 'semfuse reconstruct').",
        discussion: """
        Meshes the map several times with the settings 'semfuse mesh' uses by default (semantic \
        colours when the map has labels) and prints the median time, its spread (p10, p90 over \
        the repeats), the time per 100k surfels and the median of each stage (volume: splatting \
        the surfels into the sparse signed-distance volume; surface: marching cubes, removing \
        small pieces and coarsening where the surfels are sparse; attributes: fusing colours and \
        labels onto the vertices). The same map is \
        also meshed on one thread as the in-run baseline, so the speed-up is a ratio measured on \
        the same machine at the same time. Reading the PLY and writing the mesh are not timed. \
        Make a map first, e.g. 'semfuse reconstruct ../shared/data/7scenes-redkitchen -o \
        Output/kitchen.ply'.
        """)

    @Argument(help: "Surfel map PLY (with normals), as 'semfuse reconstruct' writes it.")
    var map: String

    @Option(help: "How many times to mesh the map (the median is reported).")
    var repeats: Int = 5

    @Option(help: "Voxel edge in metres. Default: as 'semfuse mesh' (from the median surfel radius).")
    var voxelSize: Double?

    @Option(help: "Coarsening as 'semfuse mesh --coarsen' (towards edges this many times the local surfel spacing; 0: marching cubes' mesh as is). Default: 1.")
    var coarsen: Double?

    @Option(help: "Worker threads for the main run (default: all cores).")
    var threads: Int?

    @Flag(help: "Skip the single-thread baseline run.")
    var noBaseline = false

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        try limit(threads.flatMap { InputLimits.check($0, "--threads", in: InputLimits.threads) })
        try limit(voxelSize.flatMap { InputLimits.check($0, "--voxel-size", in: InputLimits.voxelSize, unit: " m") })
        try limit(coarsen.flatMap { InputLimits.check($0, "--coarsen", in: InputLimits.meshCoarsening) })
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be between 1 and 1000") }
    }

    struct Run {
        var threads: Int
        var total: [Double] = []
        var stages: [String: [Double]] = [:]
        var median: Double { FusionBenchmark.Run.percentile(total, 0.5) }
        var p10: Double { FusionBenchmark.Run.percentile(total, 0.1) }
        var p90: Double { FusionBenchmark.Run.percentile(total, 0.9) }
        func stageMedian(_ name: String) -> Double { FusionBenchmark.Run.percentile(stages[name] ?? [], 0.5) }
    }

    func run() throws {
        let url = URL(fileURLWithPath: map)
        let cloud = try Mesh.readMap(url)
        guard cloud.normals != nil else { throw MeshingError.missingNormals(source: url.path) }
        let color = MeshColor.automatic(hasLabels: cloud.labels != nil || cloud.classProbabilities != nil,
                                        hasClassSet: cloud.classSet != nil, hasColors: cloud.colors != nil)
        var last: (mesh: TriangleMesh, report: MeshingReport)?
        func measure(threads: Int) throws -> Run {
            var run = Run(threads: threads)
            for i in 0..<repeats {
                var parameters = MeshingParameters(voxelSize: voxelSize.map(Float.init), threads: threads)
                if let coarsen { parameters.coarsening = Float(coarsen) }
                let result = try SurfelMesher.mesh(cloud, source: url.path, parameters: parameters, colorMode: color)
                let s = result.report.seconds
                run.total.append((s.volume + s.surface + s.attributes) * 1000)
                run.stages["volume", default: []].append(s.volume * 1000)
                run.stages["surface", default: []].append(s.surface * 1000)
                run.stages["attributes", default: []].append(s.attributes * 1000)
                last = result
                if !json { FileHandle.standardError.write(Data("  \(threads) thread\(threads == 1 ? "" : "s"): run \(i + 1)/\(repeats)\n".utf8)) }
            }
            return run
        }
        let mainThreads = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        if !json { print("bench mesh: \(url.lastPathComponent), \(cloud.count) surfels, \(repeats) runs") }
        let main = try measure(threads: mainThreads)
        guard let (mesh, report) = last else { return }
        let baseline = noBaseline ? nil : try measure(threads: 1)
        let per100k = cloud.count > 0 ? main.median * 100_000 / Double(cloud.count) : 0
        if json {
            var object: [String: Any] = [
                "map": url.path, "surfels": cloud.count, "vertices": mesh.vertices.count, "triangles": mesh.faces.count,
                "voxel_mm": Double(report.voxelSize) * 1000, "vertices_collapsed": report.verticesCollapsed, "threads": main.threads, "repeats": repeats,
                "median_ms": main.median, "p10_ms": main.p10, "p90_ms": main.p90, "ms_per_100k_surfels": per100k,
                "volume_median_ms": main.stageMedian("volume"), "surface_median_ms": main.stageMedian("surface"),
                "attributes_median_ms": main.stageMedian("attributes"),
            ]
            if let baseline { object["single_thread_median_ms"] = baseline.median; object["speedup_vs_single_thread"] = baseline.median / main.median }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("mesh: \(mesh.vertices.count) vertices, \(mesh.faces.count) triangles, voxel \(String(format: "%.1f", report.voxelSize * 1000)) mm, \(color == .none ? "no" : color.rawValue) colours")
        func show(_ r: Run) {
            print(String(format: "%d thread%@: median %.0f ms (p10 %.0f, p90 %.0f); volume %.0f, surface %.0f, attributes %.0f ms",
                         r.threads, r.threads == 1 ? "" : "s", r.median, r.p10, r.p90,
                         r.stageMedian("volume"), r.stageMedian("surface"), r.stageMedian("attributes")))
        }
        show(main)
        print(String(format: "  %.0f ms per 100k surfels on %d thread%@", per100k, main.threads, main.threads == 1 ? "" : "s"))
        if let baseline {
            show(baseline)
            print(String(format: "speed-up of %d threads over 1: %.2fx", main.threads, baseline.median / main.median))
        }
    }
}
