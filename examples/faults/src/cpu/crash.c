/* A kernel that writes through a null pointer: the crash a test run must survive.
   Linked into the module's executable (crash.mlir) for x86-64 (embedded ELF: no libc). */
#include <stddef.h>
void crash_workgroup(float* base, float* aligned, size_t offset, size_t size, size_t stride,
                     size_t tid) {
  (void)base; (void)aligned; (void)offset; (void)size; (void)stride; (void)tid;
  *(volatile int*)0 = 42;
}
