// 8- and 16-bit element types: they need a GPU target with 8/16-bit storage
// (vulkan-ampere, not the portable baseline, on desktop GPUs).
// The result of the matvec is written into an unfoldable constant, as IREE's own
// e2e tests do: modules are loaded into writable memory, as IREE's tools load them.
func.func @test_i8_matvec() {
  %m = util.unfoldable_constant dense<[[2, -1, 3], [0, 4, 1]]> : tensor<2x3xi8>
  %v = util.unfoldable_constant dense<[1, 2, -1]> : tensor<3xi8>
  %z = util.unfoldable_constant dense<[0, 10]> : tensor<2xi32>
  %r = linalg.matvec ins(%m, %v : tensor<2x3xi8>, tensor<3xi8>) outs(%z : tensor<2xi32>) -> tensor<2xi32>
  check.expect_eq_const(%r, dense<[-3, 17]> : tensor<2xi32>) : tensor<2xi32>
  return
}
func.func @test_f16_add() {
  %a = util.unfoldable_constant dense<[1.5, 2.25, -3.0, 4.0]> : tensor<4xf16>
  %c = arith.addf %a, %a : tensor<4xf16>
  check.expect_almost_eq_const(%c, dense<[3.0, 4.5, -6.0, 8.0]> : tensor<4xf16>) : tensor<4xf16>
  return
}
