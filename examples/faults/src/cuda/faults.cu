// Kernels that go wrong on purpose, to show that a test run survives them.
// The committed PTX is made with: nvcc -ptx -arch=sm_80 faults.cu -o faults_sm_80.ptx
// (then `.version` lowered to 7.0, which sm_80 needs at least, for older drivers).
// IREE passes a dispatch's bindings first, then its constants.

// Writes far outside any allocation: an illegal address on the GPU.
extern "C" __global__ void fault(const float* __restrict__ in, float* __restrict__ out, int n) {
  volatile float* bad = (volatile float*)(out + (1ull << 40));
  *bad = in[0] + n;
}

// Never returns (its input is all positive): the kernel a timeout must stop.
extern "C" __global__ void spin(const float* __restrict__ in, float* __restrict__ out, int n) {
  const volatile float* first = in;
  while (first[0] > 0.0f) {
  }
  out[0] = in[0] + n;
}
