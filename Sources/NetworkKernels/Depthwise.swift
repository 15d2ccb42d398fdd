/// Depthwise 3x3 convolution (padding 1, stride 1 or 2) with the folded BatchNorm bias and
/// ReLU6, as in every MobileNet-v2 inverted residual (PyTorch's symmetric padding): the general
/// depthwise kernel with that geometry.
package func depthwise3x3(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>, stride: Int, workspace: Workspace, threads: Int) {
    precondition(stride == 1 || stride == 2)
    precondition(output.height == (input.height + stride - 1) / stride && output.width == (input.width + stride - 1) / stride)
    let geometry = ConvGeometry(kernelHeight: 3, kernelWidth: 3, strideY: stride, strideX: stride, dilationY: 1, dilationX: 1,
                                padTop: 1, padLeft: 1)
    depthwiseConvolution(input, into: output, weights: weights, bias: bias, geometry: geometry, multiplier: 1, clamp: .relu6,
                         workspace: workspace, threads: threads)
}

extension SIMD8 where Scalar == Float {
    @inline(__always) mutating func addProduct(_ a: F8, _ b: F8) { self = self.addingProduct(a, b) }
}
