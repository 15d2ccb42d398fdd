#ifndef SEMFUSE_EIGEN_BRIDGE_H
#define SEMFUSE_EIGEN_BRIDGE_H
/* Small dense linear algebra through Eigen, behind a C ABI so Swift never sees templates.
   All matrices are row-major doubles. Functions return 0 on success, non-zero on failure. */
#ifdef __cplusplus
extern "C" {
#endif

/* Solves the symmetric positive (semi-)definite system A x = b (A is n x n, n <= 16) by LDLT.
   Writes the reciprocal condition estimate (min/max |D|) to rcond if non-null.
   Returns 1 if the factorisation failed or the system is numerically singular. */
int eb_solve_ldlt(int n, const double *A, const double *b, double *x, double *rcond);

/* Eigen-decomposition of a symmetric 3x3 matrix: eigenvalues ascending, eigenvectors as columns
   of the row-major `vectors`. */
int eb_symmetric_eigen3(const double *A, double *values, double *vectors);

/* Least-squares rigid alignment (Umeyama, no scale) mapping `source` onto `target`, both
   count x 3 row-major. Writes a row-major 4x4 transform target_from_source. */
int eb_umeyama_rigid(int count, const double *source, const double *target, double *transform);

/* Nearest orthonormal matrix to a 3x3 (SVD), used to re-orthonormalise accumulated rotations. */
int eb_orthonormalize3(const double *R, double *out);

/* Solves the sparse symmetric positive definite system A x = b (n x n) by a simplicial sparse
   LDLT (Cholesky) factorisation. A is given as `count` triplets (row, col, value) of its lower
   triangle (row >= col); repeated entries are summed. Returns 1 if an index is out of range,
   the factorisation fails, or the solution is not finite. */
int eb_sparse_ldlt(int n, int count, const int *rows, const int *cols, const double *values, const double *b, double *x);

/* The same system solved densely (LDLT of the full n x n matrix built from the same lower
   triplets), as the reference the sparse path is tested against. */
int eb_dense_ldlt_from_triplets(int n, int count, const int *rows, const int *cols, const double *values, const double *b, double *x);

#ifdef __cplusplus
}
#endif
#endif
