#include "EigenBridge.h"
#include <eigen3/Eigen/Dense>
#include <eigen3/Eigen/Sparse>
#include <eigen3/Eigen/SparseCholesky>
#include <vector>
#include <cmath>

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

extern "C" int eb_solve_ldlt(int n, const double *A, const double *b, double *x, double *rcond) {
    if (n <= 0 || n > 16) return 1;
    Eigen::Map<const RowMatrix> a(A, n, n);
    Eigen::Map<const Eigen::VectorXd> rhs(b, n);
    Eigen::LDLT<Eigen::MatrixXd> ldlt(a);
    if (ldlt.info() != Eigen::Success) return 1;
    Eigen::VectorXd d = ldlt.vectorD().cwiseAbs();
    double maxD = d.maxCoeff();
    double minD = d.minCoeff();
    double rc = maxD > 0 ? minD / maxD : 0.0;
    if (rcond) *rcond = rc;
    if (!(maxD > 0) || !std::isfinite(rc) || rc < 1e-14) return 1;
    Eigen::VectorXd sol = ldlt.solve(rhs);
    if (!sol.allFinite()) return 1;
    for (int i = 0; i < n; ++i) x[i] = sol[i];
    return 0;
}

extern "C" int eb_symmetric_eigen3(const double *A, double *values, double *vectors) {
    Eigen::Map<const Eigen::Matrix<double, 3, 3, Eigen::RowMajor>> a(A);
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix3d> solver(a);
    if (solver.info() != Eigen::Success) return 1;
    Eigen::Map<Eigen::Matrix<double, 3, 3, Eigen::RowMajor>> v(vectors);
    v = solver.eigenvectors();
    for (int i = 0; i < 3; ++i) values[i] = solver.eigenvalues()[i];
    return 0;
}

extern "C" int eb_umeyama_rigid(int count, const double *source, const double *target, double *transform) {
    if (count < 3) return 1;
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 3, Eigen::RowMajor>> src(source, count, 3);
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 3, Eigen::RowMajor>> dst(target, count, 3);
    Eigen::Matrix<double, 3, Eigen::Dynamic> s = src.transpose();
    Eigen::Matrix<double, 3, Eigen::Dynamic> t = dst.transpose();
    Eigen::Matrix4d T = Eigen::umeyama(s, t, false);
    if (!T.allFinite()) return 1;
    Eigen::Map<Eigen::Matrix<double, 4, 4, Eigen::RowMajor>> out(transform);
    out = T;
    return 0;
}

extern "C" int eb_orthonormalize3(const double *R, double *out) {
    Eigen::Map<const Eigen::Matrix<double, 3, 3, Eigen::RowMajor>> r(R);
    Eigen::JacobiSVD<Eigen::Matrix3d> svd(r, Eigen::ComputeFullU | Eigen::ComputeFullV);
    Eigen::Matrix3d q = svd.matrixU() * svd.matrixV().transpose();
    if (q.determinant() < 0) {
        Eigen::Matrix3d u = svd.matrixU();
        u.col(2) *= -1;
        q = u * svd.matrixV().transpose();
    }
    Eigen::Map<Eigen::Matrix<double, 3, 3, Eigen::RowMajor>> o(out);
    o = q;
    return 0;
}

namespace {
bool lowerTriplets(int n, int count, const int *rows, const int *cols, const double *values,
                   std::vector<Eigen::Triplet<double>> &out) {
    if (n <= 0 || count < 0) return false;
    out.reserve(count);
    for (int i = 0; i < count; ++i) {
        int r = rows[i], c = cols[i];
        if (r < 0 || c < 0 || r >= n || c >= n || r < c || !std::isfinite(values[i])) return false;
        out.emplace_back(r, c, values[i]);
    }
    return true;
}
}

extern "C" int eb_sparse_ldlt(int n, int count, const int *rows, const int *cols, const double *values, const double *b, double *x) {
    std::vector<Eigen::Triplet<double>> triplets;
    if (!lowerTriplets(n, count, rows, cols, values, triplets)) return 1;
    Eigen::SparseMatrix<double> a(n, n);
    a.setFromTriplets(triplets.begin(), triplets.end());
    Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>, Eigen::Lower> solver;
    solver.compute(a);
    if (solver.info() != Eigen::Success) return 1;
    Eigen::Map<const Eigen::VectorXd> rhs(b, n);
    Eigen::VectorXd sol = solver.solve(rhs);
    if (solver.info() != Eigen::Success || !sol.allFinite()) return 1;
    for (int i = 0; i < n; ++i) x[i] = sol[i];
    return 0;
}

extern "C" int eb_dense_ldlt_from_triplets(int n, int count, const int *rows, const int *cols, const double *values, const double *b, double *x) {
    std::vector<Eigen::Triplet<double>> triplets;
    if (!lowerTriplets(n, count, rows, cols, values, triplets)) return 1;
    Eigen::MatrixXd a = Eigen::MatrixXd::Zero(n, n);
    for (const auto &t : triplets) {
        a(t.row(), t.col()) += t.value();
        if (t.row() != t.col()) a(t.col(), t.row()) += t.value();
    }
    Eigen::LDLT<Eigen::MatrixXd> ldlt(a);
    if (ldlt.info() != Eigen::Success) return 1;
    Eigen::Map<const Eigen::VectorXd> rhs(b, n);
    Eigen::VectorXd sol = ldlt.solve(rhs);
    if (!sol.allFinite()) return 1;
    for (int i = 0; i < n; ++i) x[i] = sol[i];
    return 0;
}
