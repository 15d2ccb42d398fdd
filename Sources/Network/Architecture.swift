/// The layer plan of the multi-task Light-Weight RefineNet over MobileNet-v2 (docs/network.md,
/// from the authors' `models.py`), and the checkpoint keys and shapes it implies.
public struct NetworkArchitecture: Equatable, Sendable {
    /// Segmentation logits: 40 for NYU, 6 for KITTI, 46 for the joint NYU+KITTI checkpoint.
    public var classCount: Int
    /// The 3-task checkpoint adds a surface-normal head.
    public var hasNormals: Bool

    public init(classCount: Int = 40, hasNormals: Bool = false) {
        self.classCount = classCount; self.hasNormals = hasNormals
    }

    /// One MobileNet-v2 stage (`layer2` … `layer8`): expansion t, output channels, blocks, and the
    /// stride of its first block.
    public struct Stage: Equatable, Sendable {
        public let expansion: Int, outputChannels: Int, blocks: Int, stride: Int
    }
    public static let stemChannels = 32
    public static let stages: [Stage] = [
        Stage(expansion: 1, outputChannels: 16, blocks: 1, stride: 1),   // layer2
        Stage(expansion: 6, outputChannels: 24, blocks: 2, stride: 2),   // layer3 → skip 1/4
        Stage(expansion: 6, outputChannels: 32, blocks: 3, stride: 2),   // layer4 → skip 1/8
        Stage(expansion: 6, outputChannels: 64, blocks: 4, stride: 2),   // layer5 → skip 1/16
        Stage(expansion: 6, outputChannels: 96, blocks: 3, stride: 1),   // layer6 → skip 1/16
        Stage(expansion: 6, outputChannels: 160, blocks: 3, stride: 2),  // layer7 → skip 1/32
        Stage(expansion: 6, outputChannels: 320, blocks: 1, stride: 1),  // layer8 → skip 1/32
    ]
    /// Decoder width.
    public static let width = 256
    /// CRP stages per chained-residual-pooling block.
    public static let crpStages = 4

    /// Head names in output order, with their channel counts.
    public var heads: [(name: String, channels: Int)] {
        var heads = [("segm", classCount), ("depth", 1)]
        if hasNormals { heads.append(("normal", 3)) }
        return heads
    }

    /// Every key a checkpoint for this architecture holds (BatchNorm not folded, without
    /// `num_batches_tracked`), with its shape, in state_dict order.
    public var expectedTensors: [(name: String, shape: [Int])] {
        var keys: [(String, [Int])] = []
        func batchNorm(_ prefix: String, _ channels: Int) {
            for p in ["weight", "bias", "running_mean", "running_var"] { keys.append(("\(prefix).\(p)", [channels])) }
        }
        keys.append(("layer1.0.weight", [Self.stemChannels, 3, 3, 3]))
        batchNorm("layer1.1", Self.stemChannels)
        var cin = Self.stemChannels
        for (s, stage) in Self.stages.enumerated() {
            for b in 0..<stage.blocks {
                let hidden = cin * stage.expansion
                let prefix = "layer\(s + 2).\(b).output"
                keys.append(("\(prefix).0.0.weight", [hidden, cin, 1, 1])); batchNorm("\(prefix).0.1", hidden)
                keys.append(("\(prefix).1.0.weight", [hidden, 1, 3, 3])); batchNorm("\(prefix).1.1", hidden)
                keys.append(("\(prefix).2.0.weight", [stage.outputChannels, hidden, 1, 1])); batchNorm("\(prefix).2.1", stage.outputChannels)
                cin = stage.outputChannels
            }
        }
        for (name, channels) in Self.skipConvolutions { keys.append(("\(name).weight", [Self.width, channels, 1, 1])) }
        for crp in [4, 3, 2, 1] {
            for i in 1...Self.crpStages {
                keys.append(("crp\(crp).0.\(i)_outvar_dimred.weight", crp == 1 ? [Self.width, 1, 1, 1] : [Self.width, Self.width, 1, 1]))
            }
        }
        for a in [4, 3, 2] { keys.append(("conv_adapt\(a).weight", [Self.width, Self.width, 1, 1])) }
        // state_dict order: depth before segm, as the authors' module defines them.
        var headKeys = [("pre_depth", "depth", 1), ("pre_segm", "segm", classCount)]
        if hasNormals { headKeys.append(("pre_normal", "normal", 3)) }
        for (pre, head, channels) in headKeys {
            keys.append(("\(pre).weight", [Self.width, 1, 1, 1]))
            keys.append(("\(head).weight", [channels, Self.width, 3, 3]))
            keys.append(("\(head).bias", [channels]))
        }
        return keys
    }

    /// The decoder's 1x1 "stem" convolutions from each skip to 256 channels.
    static let skipConvolutions: [(String, Int)] = [("conv8", 320), ("conv7", 160), ("conv6", 96), ("conv5", 64), ("conv4", 32), ("conv3", 24)]

    /// Output size (stride 4) for an input of `height` x `width`: two stride-2 steps, each ceil(n/2).
    public static func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        func half(_ n: Int) -> Int { (n + 1) / 2 }
        return (half(half(height)), half(half(width)))
    }
}
