/// Small helpers on SIMD3 vectors used throughout the pipeline.
extension SIMD3 where Scalar: FloatingPoint {
    @inlinable public func dot(_ o: SIMD3) -> Scalar { (self * o).sum() }
    @inlinable public func cross(_ o: SIMD3) -> SIMD3 {
        SIMD3(y * o.z - z * o.y, z * o.x - x * o.z, x * o.y - y * o.x)
    }
    @inlinable public var length: Scalar { (self * self).sum().squareRoot() }
    @inlinable public var normalized: SIMD3 {
        let n = length
        return n > 0 ? self / n : self
    }
    @inlinable public var isFinite: Bool { x.isFinite && y.isFinite && z.isFinite }
}
