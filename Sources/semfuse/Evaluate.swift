import ArgumentParser
import Export
import Foundation
import Imaging
import Meshing
import Network
import Pipeline
import Semantics
import Sequences

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a trajectory and a labelled map against a sequence's ground truth.",
        discussion: """
        Trajectory (TUM format): absolute trajectory error after a least-squares rigid alignment \
        (RMSE, median, max) and relative pose error between consecutive frames, paired with the \
        sequence's ground-truth poses by timestamp.

        Map (PLY with a 'label' property, as written by 'semfuse reconstruct'): the points are \
        rendered as discs into every n-th ground-truth label frame; per-class IoU, mean IoU and \
        pixel accuracy are reported, next to the same numbers for the per-frame predictions \
        (--labels) on the same pixels.

        Predicted depth (--depth-predictions <folder of NNNNNN.depth.png from 'semfuse predict'>, \
        or --network <weights> to run the network here) is scored against the sequence's sensor \
        depth on every n-th frame: RMSE, abs-rel and the δ < 1.25^k accuracies.
        """)

    @Argument(help: "Sequence folder with ground truth.")
    var sequence: String

    @Option(help: "Estimated trajectory (TUM format).")
    var trajectory: String?

    @Option(help: "Labelled map (PLY).")
    var map: String?

    @Option(help: "Per-frame predictions to score next to the map: simulated, recorded or none.")
    var labels: String = "none"

    @Option(help: "Seed of the simulated segmenter.")
    var seed: UInt64 = 1

    @Option(help: "Use every n-th label (or depth) frame.")
    var every: Int = 10

    @Option(help: "Folder of predicted depth PNGs named by frame (NNNNNN.depth.png, 5000 per metre), as 'semfuse predict <sequence>' writes.")
    var depthPredictions: String?

    @Option(help: "A depth model (file or bundled name: 'fastdepth', or the joint network's weights): predict depth on the evaluated frames and score it.")
    var network: String?

    @Option(help: "Depth model input: 'native' (its own size) or WIDTHxHEIGHT. Default: the measured default.")
    var depthInput: String?

    @Option(help: precisionHelp)
    var precision: NetworkPrecision = .float32

    @Option(help: "Central fraction of the frame fed to the depth model (1 = whole frame).")
    var depthCrop: Double?

    @Option(help: "The depth model's training focal length (pixels at its native size), or 'none' for no focal-length correction.")
    var depthFocal: String?

    @Option(help: "Class set to score labelled maps in (nyu40 or nyu13; default: the sequence's). Maps in other sets (ade32) are mapped onto it.")
    var classSet: String?

    @Option(help: "Ignore sensor depth beyond this many metres when scoring depth.")
    var maxDepth: Float = 10

    @Option(help: "The surfel map (PLY) the mesh given by --map was made from: report how far the mesh's vertex labels agree with the map's (docs/meshing.md, \"Label agreement\").")
    var meshLabels: String?

    @Flag(help: "With --map: also score raw depth frames as maps (every 10th frame held out of the reference, back-projected at every pixel, and thinned to one point per --floor-voxel cube), the floor of the map accuracy figure.")
    var depthFloor = false

    @Option(help: "Cube size for the thinned raw-depth floor, metres (a mesh's vertices are about one per voxel).")
    var floorVoxel: Float = 0.01

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        guard trajectory != nil || map != nil || depthPredictions != nil || network != nil else {
            throw ValidationError("give --trajectory, --map, --depth-predictions and/or --network")
        }
        guard depthPredictions == nil || network == nil else { throw ValidationError("give --depth-predictions or --network, not both") }
        guard ["simulated", "recorded", "none"].contains(labels) else { throw ValidationError("--labels must be simulated, recorded or none") }
        guard !depthFloor || map != nil else { throw ValidationError("--depth-floor is reported with --map") }
        guard floorVoxel > 0.0005 && floorVoxel < 1 else { throw ValidationError("--floor-voxel must be between 0.5 mm and 1 m") }
        guard meshLabels == nil || map != nil else { throw ValidationError("--mesh-labels needs the mesh as --map") }
        guard every >= 1 else { throw ValidationError("--every must be at least 1") }
        try limit(InputLimits.check(Double(maxDepth), "--max-depth", in: InputLimits.maxDepth, exclusiveLower: true, unit: " m"))
        if let depthCrop, !(depthCrop > 0.1 && depthCrop <= 1) { throw ValidationError("--depth-crop must be in (0.1, 1]") }
    }

    func run() throws {
        let source = try SequenceLoader.open(URL(fileURLWithPath: sequence), options: ReaderOptions())
        for line in source.assumptions { FileHandle.standardError.write(Data("note: \(line)\n".utf8)) }
        for line in source.warnings { FileHandle.standardError.write(Data("warning: \(line)\n".utf8)) }
        var evaluation = Evaluation()
        var object: [String: Any] = ["sequence": source.name]
        var lines: [String] = ["Evaluation against \(source.name) (\(source.layout))"]
        if let trajectory {
            evaluation = try Evaluation.trajectory(TUMTrajectory.read(URL(fileURLWithPath: trajectory)), source: source)
            if let ate = evaluation.ate {
                lines.append("  \(ate)")
                object["ate"] = ["rmse_m": ate.rmse, "median_m": ate.median, "max_m": ate.max, "frames": ate.count]
            } else {
                lines.append("  trajectory: fewer than 3 poses matched ground-truth timestamps")
            }
            if let rpe = evaluation.rpe {
                lines.append("  \(rpe)")
                object["rpe"] = ["translation_rmse_m": rpe.translationRMSE, "rotation_mean_deg": rpe.rotationMeanDegrees, "pairs": rpe.pairs]
            }
            if let first = evaluation.leftOut.first {
                let list = evaluation.leftOut.prefix(10).map { "\($0.position)" }.joined(separator: ", ")
                lines.append("  \(evaluation.leftOut.count) ground-truth frames left out (unusable pose): \(list)\(evaluation.leftOut.count > 10 ? ", ..." : ""); first: \(first.reason)")
                object["left_out_frames"] = evaluation.leftOut.map(\.position)
            }
        }
        if let map {
            let file = try PLYReader.read(URL(fileURLWithPath: map))
            let name = file.comments.first { $0.hasPrefix("class_set ") }.map { String($0.dropFirst("class_set ".count)) }
            var cloud = file.pointCloud()
            if let meshLabels {
                guard file.faces != nil else { throw CLIError("\(map): --mesh-labels compares a mesh's labels, and this PLY has no faces") }
                let surfels = try Mesh.readMap(URL(fileURLWithPath: meshLabels))
                guard surfels.classSet?.name == name else {
                    throw CLIError("\(meshLabels) (class set \(surfels.classSet?.name ?? "none")) and \(map) (\(name ?? "none")) do not share a class set")
                }
                let a = try LabelAgreementMeasure.measure(mesh: cloud, map: surfels, source: meshLabels,
                                                          threads: max(1, ProcessInfo.processInfo.activeProcessorCount))
                func percent(_ t: LabelAgreement.Tally) -> String { t.fraction.map { String(format: "%.1f %%", $0 * 100) } ?? "n/a" }
                lines.append("  mesh labels against the surfel map \(meshLabels) (\(a.vertices) vertices, \(surfels.count) surfels):")
                lines.append("    the label the map shows at the vertex (discs containing it): \(percent(a.covering)) of \(a.covering.compared) vertices agree; \(a.uncovered) vertices inside no disc")
                let bins = LabelAgreement.shareBins
                for (b, t) in a.coveringByShare.enumerated() where t.compared > 0 {
                    let upper = b + 1 < bins.count ? String(format: "%.1f)", bins[b + 1]) : "1]"
                    lines.append(String(format: "      map's label share [%.1f, %@: %.1f %% of the compared vertices, %@ agree", bins[b], upper,
                                        100 * Double(t.compared) / Double(max(a.covering.compared, 1)), percent(t)))
                }
                lines.append("    the nearest surfel's label (within \(String(format: "%.1f", a.nearestRadius * 100)) cm): \(percent(a.nearest)) of \(a.nearest.compared) vertices agree")
                lines.append("    the map against itself (each surfel against the others, same definitions): discs \(percent(a.mapCovering)) of \(a.mapCovering.compared), nearest \(percent(a.mapNearest)) of \(a.mapNearest.compared)")
                func tally(_ t: LabelAgreement.Tally) -> [String: Any] { ["compared": t.compared, "agreeing": t.agreeing, "fraction": t.fraction ?? NSNull()] }
                object["mesh_labels"] = ["vertices": a.vertices, "covering_discs": tally(a.covering), "uncovered": a.uncovered,
                                         "covering_by_share": a.coveringByShare.enumerated().map { ["from": Double(bins[$0.offset]), "tally": tally($0.element)] as [String: Any] },
                                         "nearest_surfel": tally(a.nearest), "nearest_radius_m": Double(a.nearestRadius), "map_covering_discs": tally(a.mapCovering),
                                         "map_nearest_surfel": tally(a.mapNearest)] as [String: Any]
            }
            let mapClassSet = name.flatMap(ClassSet.named) ?? source.classSet ?? .nyu40
            if cloud.labels != nil && name.flatMap(ClassSet.named) == nil && source.classSet == nil {
                throw CLIError("\(map): no class set in the PLY comments and none in the sequence")
            }
            if let mapLabels = cloud.labels, !mapLabels.isEmpty {
                var counts: [Int32: Int] = [:]
                for l in mapLabels { counts[l, default: 0] += 1 }
                let top = counts.sorted { $0.value > $1.value }.prefix(8)
                let named = top.map { (mapClassSet.classes.indices.contains(Int($0.key)) ? mapClassSet.classes[Int($0.key)].name : ($0.key < 0 ? "no label" : "id \($0.key)"))
                    + String(format: " %.1f %%", 100 * Double($0.value) / Double(mapLabels.count)) }
                lines.append("  map labels (\(mapClassSet.name), \(mapLabels.count) points): " + named.joined(separator: ", "))
                object["label_distribution"] = Dictionary(uniqueKeysWithValues: counts.map {
                    (mapClassSet.classes.indices.contains(Int($0.key)) ? mapClassSet.classes[Int($0.key)].name : "id \($0.key)", Double($0.value) / Double(mapLabels.count))
                })
            }
            var classSet = mapClassSet
            let native = source.classSet ?? mapClassSet
            // A map in a finer or other class set than the ground truth (e.g. ade32 from the
            // bundled segmenter) is scored in the truth's classes (or --class-set's) through the
            // documented mapping.
            let scoring = self.classSet.flatMap(ClassSet.named) ?? native
            if classSet != scoring, let toScoring = ClassMapping(from: classSet, to: scoring) {
                cloud.labels = cloud.labels?.map { $0 >= 0 && Int($0) < toScoring.table.count ? Int32(toScoring.table[Int($0)]) : $0 }
                lines.append("  map labels mapped \(classSet.name) → \(scoring.name) (docs/class-sets.md)")
                classSet = scoring
            }
            let mapping = native == classSet ? nil : ClassMapping(from: native, to: classSet)
            var predictor: Predictor?
            switch labels {
            case "simulated": predictor = SimulatedSegmenterPredictor(classSet: native, seed: seed)
            case "recorded": predictor = RecordedPredictor(classSet: native)
            default: predictor = nil
            }
            if let p = predictor, let mapping { predictor = ClassMappingPredictor(p, mapping: mapping) }
            if source.capabilities.hasDepth && source.capabilities.hasPoses,
               let g = try MapGeometryScore.compute(map: cloud.positions, triangles: file.faces, source: source, every: every) {
                lines.append(String(format: "  %@ geometry against sensor depth (%d frames, ground-truth poses): accuracy median %.2f cm (%.0f %% within 2 cm, %.0f %% within 5 cm), completeness median %.2f cm (%.0f %% within 2 cm, %.0f %% within 5 cm)",
                                    file.faces == nil ? "map" : "mesh (\(file.faces!.count) triangles; completeness to the surface)", g.frames, g.accuracyMedian * 100, g.accuracyWithin2cm * 100, g.accuracyWithin5cm * 100,
                                    g.completenessMedian * 100, g.completenessWithin2cm * 100, g.completenessWithin5cm * 100))
                object["map_geometry"] = ["accuracy_median_m": g.accuracyMedian, "accuracy_within_2cm": g.accuracyWithin2cm, "accuracy_within_5cm": g.accuracyWithin5cm,
                                          "completeness_median_m": g.completenessMedian, "completeness_within_2cm": g.completenessWithin2cm,
                                          "completeness_within_5cm": g.completenessWithin5cm, "frames": g.frames, "map_points": g.mapPoints]
            }
            if depthFloor, source.capabilities.hasDepth && source.capabilities.hasPoses,
               let f = try MapGeometryScore.depthFloor(source: source, every: every, thinVoxel: floorVoxel) {
                lines.append(String(format: "  raw depth as a map (%d held-out frames against the others): accuracy median %.3f cm (%.1f %% within 2 cm) per pixel, %.3f cm (%.1f %%) thinned to one point per %.1f cm cube",
                                    f.heldOutFrames, f.perPixel.median * 100, f.perPixel.within2cm * 100, f.thinned.median * 100, f.thinned.within2cm * 100, floorVoxel * 100))
                object["depth_floor"] = ["held_out_frames": f.heldOutFrames, "per_pixel_accuracy_median_m": f.perPixel.median, "per_pixel_within_2cm": f.perPixel.within2cm,
                                         "per_pixel_points": f.perPixel.points, "thinned_accuracy_median_m": f.thinned.median, "thinned_within_2cm": f.thinned.within2cm,
                                         "thinned_points": f.thinned.points, "thin_voxel_m": Double(floorVoxel)]
            }
            if cloud.labels == nil || !source.capabilities.hasLabels {
                lines.append("  labels not scored: \(cloud.labels == nil ? "the map has no labels" : "the sequence has no label images")")
            } else {
            try evaluation.labels(cloud: cloud, classSet: classSet, source: source, predictor: predictor,
                                  truthMapping: mapping, every: every)
            lines.append("  labels on \(evaluation.labelFrames) ground-truth frames, pixels covered by the map:")
            func report(_ title: String, _ score: SegmentationScore?) -> [String: Any]? {
                guard let score, let accuracy = score.pixelAccuracy, let miou = score.meanIoU else { return nil }
                lines.append(String(format: "    %@: pixel accuracy %.1f %%, mean IoU %.1f %% over %d pixels", title, accuracy * 100, miou * 100, score.pixels))
                var perClass: [String: Double] = [:]
                for (k, iou) in score.classIoU { perClass[classSet.classes[k].name] = iou }
                return ["pixel_accuracy": accuracy, "mean_iou": miou, "pixels": score.pixels, "class_iou": perClass]
            }
            object["map"] = report("fused map", evaluation.mapScore)
            object["per_frame"] = report("per-frame \(labels)", evaluation.predictionScore)
            if let score = evaluation.mapScore {
                lines.append("    per-class IoU (map\(evaluation.predictionScore != nil ? " | per-frame" : "")):")
                var other: [Int: Double] = [:]
                for entry in evaluation.predictionScore?.classIoU ?? [] { other[entry.classId] = entry.iou }
                for (k, iou) in score.classIoU {
                    let name = classSet.classes[k].name
                    var line = "      " + name + String(repeating: " ", count: max(1, 16 - name.count)) + String(format: "%5.1f %%", iou * 100)
                    if let o = other[k] { line += String(format: " | %5.1f %%", o * 100) }
                    lines.append(line)
                }
            }
        }
        }
        if depthPredictions != nil || network != nil {
            guard source.capabilities.hasDepth else { throw CLIError("\(source.name): the sequence has no sensor depth to score predictions against") }
            var score = DepthScore(maxDepth: maxDepth)
            let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
            let model = try network.map { try ModelLibrary.load($0, threads: threads,
                                                                 depthInput: DepthInputArgument.parse(size: depthInput, crop: depthCrop, focal: depthFocal),
                                                                 precision: precision) }
            if let model, !model.predictsDepth { throw CLIError("\(model.name) predicts no depth") }
            for position in stride(from: 0, to: source.frameCount, by: every) {
                let frame = try source.frame(at: position)
                guard let truth = frame.depth else { continue }
                let predicted: DepthImage
                if let model {
                    let output = try model.predict(frame.color, intrinsics: source.intrinsics)
                    guard let image = output.depthImage(width: frame.color.width, height: frame.color.height) else { continue }
                    predicted = image
                } else {
                    let url = URL(fileURLWithPath: depthPredictions!).appendingPathComponent(String(format: "%06d.depth.png", position))
                    guard FileManager.default.fileExists(atPath: url.path) else { continue }
                    predicted = try PNGCodec.readGray16(url).map { Float($0) / PredictionWriter.depthScale }
                }
                score.add(predicted: predicted, truth: truth)
            }
            guard score.frames > 0 else {
                throw CLIError("no predicted depth found for the evaluated frames (every \(every)th; expected NNNNNN.depth.png in \(depthPredictions ?? "?"))")
            }
            lines.append("  \(score)")
            if let rmse = score.rmse, let absRel = score.absRel, let deltas = score.deltas {
                object["depth"] = ["rmse_m": rmse, "abs_rel": absRel, "delta1": deltas[0], "delta2": deltas[1], "delta3": deltas[2],
                                   "frames": score.frames, "pixels": score.pixels]
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(lines.joined(separator: "\n"))
        }
    }
}
