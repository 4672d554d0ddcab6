// Elementwise arithmetic, floats and integers.
func.func @test_add_f32() {
  %a = util.unfoldable_constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %b = util.unfoldable_constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %c = arith.addf %a, %b : tensor<4xf32>
  check.expect_almost_eq_const(%c, dense<[6.0, 8.0, 10.0, 12.0]> : tensor<4xf32>) : tensor<4xf32>
  return
}
func.func @test_mul_i32() {
  %a = util.unfoldable_constant dense<[1, -2, 3, 400]> : tensor<4xi32>
  %c = arith.muli %a, %a : tensor<4xi32>
  check.expect_eq_const(%c, dense<[1, 4, 9, 160000]> : tensor<4xi32>) : tensor<4xi32>
  return
}
