// Finite-difference gradient for checking analytic backward passes.

// g[i] = (f(x + eps·e_i) − f(x − eps·e_i)) / (2·eps); x[i] is restored after each probe.
export function numericalGrad(f: () => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const orig = x[i];
    x[i] = orig + eps;
    const fp = f();
    x[i] = orig - eps;
    const fm = f();
    x[i] = orig;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}
