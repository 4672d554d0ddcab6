// Check cases on CUDA next to cases whose kernels go wrong (faults.cu): an illegal address
// and a kernel that never returns. The run must report them and go on with the others.
#sm80 = #hal.executable.target<"cuda", "cuda-nvptx-fb", {iree_codegen.target_info = #iree_gpu.target<arch = "sm_80", features = "+ptx76", wgp = <compute = fp64|fp32|fp16|int64|int32|int16|int8, storage = b64|b32|b16|b8, subgroup = shuffle|arithmetic, dot = dp4xi8toi32, mma = [<NV_MMA_SYNC_F32_16x8x16_F16>, <NV_MMA_SYNC_F16_16x8x16_F16>, <NV_MMA_SYNC_F32_16x8x16_BF16>, <NV_WMMA_F32_16x16x16_F16>, <NV_WMMA_F16_16x16x16_F16>], subgroup_size_choices = [32], max_workgroup_sizes = [1024, 1024, 1024], max_thread_count_per_workgroup = 1024, max_workgroup_memory_bytes = 166912, max_workgroup_counts = [2147483647, 65535, 65535]>>}>
#cuda = #hal.device.target<"cuda", [#sm80]> : !hal.device
module @faults attributes {hal.device.targets = [#cuda]} {
  hal.executable.source private @kernels <{objects = #hal.executable.objects<{#sm80 = [
      #hal.executable.object<{path = "src/cuda/faults_sm_80.ptx"}>]}>}> {
    hal.executable.export public @fault ordinal(0) layout(#hal.pipeline.layout<constants = 1, bindings = [
          #hal.pipeline.binding<storage_buffer, ReadOnly>,
          #hal.pipeline.binding<storage_buffer>
        ]>) count(%device: !hal.device, %workload: index) -> (index, index, index) {
      %c1 = arith.constant 1 : index
      hal.return %c1, %c1, %c1 : index, index, index
    } <workgroup_size = [1 : index, 1 : index, 1 : index]>
    hal.executable.export public @spin ordinal(1) layout(#hal.pipeline.layout<constants = 1, bindings = [
          #hal.pipeline.binding<storage_buffer, ReadOnly>,
          #hal.pipeline.binding<storage_buffer>
        ]>) count(%device: !hal.device, %workload: index) -> (index, index, index) {
      %c1 = arith.constant 1 : index
      hal.return %c1, %c1, %c1 : index, index, index
    } <workgroup_size = [1 : index, 1 : index, 1 : index]>
  }
  func.func @test_before() {
    %a = util.unfoldable_constant dense<[1.0, 2.0]> : tensor<2xf32>
    %b = arith.addf %a, %a : tensor<2xf32>
    check.expect_almost_eq_const(%b, dense<[2.0, 4.0]> : tensor<2xf32>) : tensor<2xf32>
    return
  }
  func.func @test_illegal_address() {
    %c4 = arith.constant 4 : index
    %n = arith.constant 4 : i32
    %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
    %0 = flow.dispatch @kernels::@fault[%c4](%n, %a) : (i32, tensor<4xf32>) -> tensor<4xf32>
    check.expect_almost_eq_const(%0, dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>) : tensor<4xf32>
    return
  }
  func.func @test_hang() {
    %c4 = arith.constant 4 : index
    %n = arith.constant 4 : i32
    %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
    %0 = flow.dispatch @kernels::@spin[%c4](%n, %a) : (i32, tensor<4xf32>) -> tensor<4xf32>
    check.expect_almost_eq_const(%0, dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>) : tensor<4xf32>
    return
  }
  func.func @test_after() {
    %a = util.unfoldable_constant dense<[3, 4]> : tensor<2xi32>
    check.expect_eq_const(%a, dense<[3, 4]> : tensor<2xi32>) : tensor<2xi32>
    return
  }
}
