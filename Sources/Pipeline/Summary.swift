import Export
import Foundation
import Mapping

/// The human-readable end-of-run report.
enum Summary {
    /// The pieces that joined the map or were written beside it, one by one (the first 5), and
    /// those not kept, in one count: a run that keeps losing the camera makes many small ones.
    static func pieces(_ pieces: [MapPieceReport]) -> String {
        let listed = pieces.filter { $0.joinedAt != nil || $0.kept }
        // Pieces join the map being tracked; when a piece became the map at the end, that was the first one.
        let joinedMap = pieces.contains { $0.becameTheMap } ? "the map the run began with" : "the map"
        var parts = listed.prefix(5).map { p -> String in
            var text = "frames \(p.frameRange) (\(p.frames) fused)"
            if p.becameTheMap {
                text += " never met the map the run began with and, larger, became the map"
            } else if p.wasTheMap {
                text += ", the map the run began with, smaller than the piece that became the map, kept as a map of its own"
            } else if let (a, b) = p.placedAfterTheRun, let metres = p.shiftMetres, let degrees = p.shiftDegrees {
                text += String(format: " left, then placed in %@ after the run by surface shape, verified from its keyframes of frames %d and %d (moved %.0f mm / %.1f deg)",
                               joinedMap, a, b, metres * 1000, degrees)
            } else if let joined = p.joinedAt, let metres = p.shiftMetres, let degrees = p.shiftDegrees {
                text += String(format: p.joinedLater ? " left, then joined %@ at frame %d when the camera came back to its surface (moved %.0f mm / %.1f deg)"
                                                     : " joined %@ at frame %d (moved %.0f mm / %.1f deg)", joinedMap, joined, metres * 1000, degrees)
            } else {
                text += " never placed in the map, kept as a map of its own"
            }
            if !p.tookIn.isEmpty {
                text += " (with the piece\(p.tookIn.count == 1 ? "" : "s") of frames \(p.tookIn.joined(separator: ", ")) placed in it after the run)"
            }
            return text
        }
        if listed.count > 5 { parts.append("\(listed.count - 5) more") }
        let dropped = pieces.filter { $0.joinedAt == nil && !$0.kept }
        if !dropped.isEmpty {
            let frames = dropped.reduce(0) { $0 + $1.frames }
            parts.append("\(dropped.count) never placed in the map and not kept (\(frames) frame\(frames == 1 ? "" : "s") in all; kept are pieces of \(Reconstruction.minimumKeptPiece) frames or more, the \(Reconstruction.maximumKeptPieces) largest)")
        }
        return parts.joined(separator: "; ")
    }

    static func make(reconstruction r: Reconstruction, outcome: ReconstructionOutcome, output: URL, trajectory: URL,
                     cloud: PointCloud, colorMode: MapExport.ColorMode, ascii: Bool) -> String {
        var lines: [String] = []
        let selected = r.positions.count
        switch outcome {
        case .completed:
            lines.append("Reconstructed \(r.source.name) (\(r.source.layout)): \(r.framesFused) of \(selected) selected frames fused.")
        case .interrupted(let position):
            lines.append("INTERRUPTED before frame \(position): \(r.framesFused) of \(selected) frames fused; the map so far was written.")
        case .failed(let error):
            lines.append("FAILED: \(error)")
            lines.append("  \(r.framesFused) of \(selected) frames fused before the failure; the map so far was written.")
        }
        if let predictor = r.predictor {
            let inMap = r.framesWithPredictionInMap
            var line = "  labels: \(predictor.name), \(predictor.classSet.name), on \(inMap) frames"
                + (inMap == r.framesWithPrediction ? "" : " of the map (\(r.framesWithPrediction) with those fused into separate pieces)")
            if let acc = r.perFrameAccuracy.accuracy {
                line += String(format: "; per-frame accuracy vs ground truth %.1f %%", acc * 100)
            }
            lines.append(line)
        } else {
            lines.append("  labels: none (geometry only)")
        }
        if r.options.poses == .track {
            let weight = r.options.tracking.photometricWeight
            var line = "  poses: tracked (frame-to-model ICP, " + (r.options.tracking.depthNoise == nil ? "uniform weights" : "depth-noise weights")
                + (weight > 0 ? String(format: ", photometric term weight %g", weight) : "") + ")"
            // Frames of the pieces written beside the map were fused there; the others nowhere.
            let beside = Set(r.leftPieces.flatMap(\.positions))
            let lost = r.trackingFailures.filter { !beside.contains($0.position) }
            if !lost.isEmpty {
                let list = lost.prefix(5).map { "\($0.position)" }.joined(separator: ", ")
                line += "; tracking FAILED on \(lost.count) frames (\(list)\(lost.count > 5 ? ", ..." : "")), not fused"
            }
            if !beside.isEmpty {
                line += "; \(beside.count) frames not in the map are in the pieces written beside it"
            }
            if r.cornerChecks > 0 {
                line += String(format: "; image corners checked on %d unusual frames (%d refused, %.0f ms each)", r.cornerChecks, r.cornerRefusals,
                               r.cornerCheckSeconds * 1000 / Double(r.cornerChecks))
            }
            lines.append(line)
            if let relocaliser = r.relocaliser {
                var text = String(format: "  %@: %d keyframes (%.1f ms per fused frame to keep them)",
                                  r.options.relocalise ? "relocalisation" : "keyframes (for global loop closure; relocalisation off)",
                                  relocaliser.keyframeCount, r.keyframeSeconds * 1000 / Double(max(r.framesFused, 1)))
                if !r.options.relocalise {
                } else if r.relocalisations.isEmpty {
                    text += r.trackingFailures.isEmpty ? ", not needed" : ", no lost frame relocalised"
                } else {
                    let list = r.relocalisations.prefix(5).map { "\($0.position) from keyframe \($0.keyframePosition) (\($0.inliers)/\($0.matches) \($0.byShape ? "surface-shape matches" : "keypoints"))" }
                    text += "; relocalised \(r.relocalisations.count) frame\(r.relocalisations.count == 1 ? "" : "s"): " + list.joined(separator: ", ") + (r.relocalisations.count > 5 ? ", ..." : "")
                }
                if r.relocalisationSeconds > 0 {
                    text += String(format: "; %.2f s in relocalisation attempts", r.relocalisationSeconds)
                }
                lines.append(text)
            }
            if !r.pieces.isEmpty {
                lines.append("  separate pieces (tracked while lost): " + Self.pieces(r.pieces)
                             + (r.placementSeconds > 0 ? String(format: "; %.2f s registering the left pieces after the run", r.placementSeconds) : ""))
            }
            if let promoted = r.promotedPiece, !r.relocalisations.isEmpty || !r.loopClosures.isEmpty {
                lines.append("  (the relocalisations and loop closures listed here were in the map the run began with, not in the piece of frames \(promoted.frameRange) written as the map)")
            }
            if r.options.loopClosure {
                var text = "  loop closure: "
                if r.loopClosures.isEmpty {
                    text += r.loopClosureAttempts == 0 ? "no old (inactive) surface came back into view" : "none accepted"
                } else {
                    let list = r.loopClosures.prefix(8).map { c -> String in
                        let report = c.report
                        return String(format: "frame %d %@ (%d constraints + %d pins, residual %.1f -> %.1f mm, camera moved %.1f mm, %.0f ms)", c.position,
                                      report.keyframePosition.map { "global from keyframe \($0)" } ?? report.kind.rawValue, report.constraints, report.pins, report.residualBefore * 1000, report.residualAfter * 1000,
                                      report.correctionMetres * 1000, report.seconds * 1000)
                    }
                    text += "\(r.loopClosures.count) closed: " + list.joined(separator: "; ") + (r.loopClosures.count > 8 ? "; ..." : "")
                }
                if r.loopClosureAttempts > 0 {
                    // The checks that refused, most first: says why a loop did not close.
                    let checks = LoopCloser.Rejection.tally(r.loopClosureRejectionsByCheck)
                    text += String(format: "; %d registrations tried (%d rejected%@; %d found the old surface in place), %.1f ms per fused frame",
                                   r.loopClosureAttempts, r.loopClosureRejections, checks.isEmpty ? "" : ": " + checks,
                                   r.loopClosureReactivations, r.loopClosureSeconds * 1000 / Double(max(r.framesFused, 1)))
                }
                lines.append(text)
            }
            if let ate = r.absoluteTrajectoryError { lines.append("  against ground truth: \(ate)") }
            if let first = r.groundTruthLeftOut.first {
                let list = r.groundTruthLeftOut.prefix(10).map { "\($0.position)" }.joined(separator: ", ")
                lines.append("  \(r.groundTruthLeftOut.count) frames left out of the score (unusable ground-truth pose; tracked and fused): "
                             + "\(list)\(r.groundTruthLeftOut.count > 10 ? ", ..." : ""); first: \(first.reason)")
            }
        }
        let map = r.map
        let stable = map.stableCount(threshold: r.options.fusion.confidenceThreshold)
        let labels = map.classCount > 0 ? " (class distributions: \(map.labelStorage))" : ""
        lines.append("  surfels: \(map.count) (\(stable) stable), \(map.bytesPerSurfel) bytes each\(labels)")
        let sorted = r.fusionSeconds.sorted()
        if !sorted.isEmpty {
            let median = sorted[sorted.count / 2] * 1000
            lines.append(String(format: "  fusion: median %.1f ms/frame (%.1f frames/s), whole run %.1f s incl. reading",
                                median, 1000 / max(median, 1e-9), r.totalSeconds))
        }
        let properties = cloud.propertyNames.joined(separator: " ")
        lines.append("Wrote \(output.path): \(cloud.count) points, \(ascii ? "ASCII" : "binary") PLY, colours \(colorMode.rawValue)")
        lines.append("  properties: \(properties)")
        lines.append("Wrote \(trajectory.path): \(r.trajectory.count) camera poses (TUM format)")
        return lines.joined(separator: "\n")
    }
}
