import ArgumentParser
import Network

extension NetworkPrecision: ExpressibleByArgument {}

/// The help text of every command's `--precision`.
let precisionHelp = ArgumentHelp(
    "Arithmetic of the network's dense convolutions: float32 (the reference) or int8 (8-bit weights and activations, int32 sums: the bundled segmenter runs in about 0.55x the time with 99 % of its labels unchanged; needs AVX-512 VNNI; docs/results.md).",
    valueName: "float32|int8")
