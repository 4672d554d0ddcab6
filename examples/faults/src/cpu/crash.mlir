// Check cases beside one whose kernel (crash.c) writes through a null pointer.
#x86_64 = #hal.executable.target<"llvm-cpu", "embedded-elf-x86_64", {
  data_layout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-f80:128-n8:16:32:64-S128",
  native_vector_size = 32 : index, cpu = "generic",
  target_triple = "x86_64-unknown-unknown-eabi-elf"
}>
#cpu = #hal.device.target<"local", [#x86_64]>
module @crashy attributes {hal.device.targets = [#cpu]} {
  stream.executable private @ex attributes {
    hal.executable.objects = #hal.executable.objects<{
      #x86_64 = [#hal.executable.object<{path = "build/cpu/crash_x86_64.o"}>]
    }>
  } {
    stream.executable.export public @crash workgroups(%n: index) -> (index, index, index) {
      %c1 = arith.constant 1 : index
      stream.return %c1, %c1, %c1 : index, index, index
    }
    builtin.module {
      func.func private @crash_workgroup(%b: memref<?xf32>, %tid: index) attributes {hal.import.static}
      func.func @crash(%binding: !stream.binding, %n: index) {
        %c0 = arith.constant 0 : index
        %m = stream.binding.subspan %binding[%c0] : !stream.binding -> memref<?xf32>{%n}
        func.call @crash_workgroup(%m, %c0) : (memref<?xf32>, index) -> ()
        return
      }
    }
  }
  func.func @test_before() {
    %a = util.unfoldable_constant dense<[1, 2]> : tensor<2xi32>
    check.expect_eq_const(%a, dense<[1, 2]> : tensor<2xi32>) : tensor<2xi32>
    return
  }
  func.func @test_crash() {
    %c4 = arith.constant 4 : index
    %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
    %0 = flow.dispatch @ex::@crash[%c4](%a, %c4) : (tensor<4xf32>, index) -> %a
    check.expect_almost_eq_const(%0, dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>) : tensor<4xf32>
    return
  }
  func.func @test_after() {
    %a = util.unfoldable_constant dense<[3, 4]> : tensor<2xi32>
    check.expect_eq_const(%a, dense<[3, 4]> : tensor<2xi32>) : tensor<2xi32>
    return
  }
}
