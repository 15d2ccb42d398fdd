/// Unaligned SIMD loads and stores; kept in one place so the kernels read like the math.
package typealias F8 = SIMD8<Float>

@inline(__always) package func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}
@inline(__always) package func load8(_ p: UnsafeMutablePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}
@inline(__always) package func load16(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}
@inline(__always) package func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}
/// Stores the first `n` (< 8) lanes.
@inline(__always) package func storePartial(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}
/// Lane-wise max/min through compare-and-blend. The standard library's `pointwiseMax` and
/// `clamped` follow IEEE `maximum` NaN rules lane by lane and do not vectorise, which made the
/// pooling and activation kernels several times slower.
@inline(__always) package func vmax(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .> a) }
@inline(__always) package func vmin(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .< a) }
@inline(__always) package func clamp6(_ v: F8) -> F8 {
    vmin(vmax(v, F8(repeating: 0)), F8(repeating: 6))
}
