/* IEEE half and bfloat16 <-> float32, the conversions the device needs
 * (weights and scales stored as f16) and the compiler shares. Pure
 * functions of their argument: no state, no allocation. */
#ifndef MICA_HALF_H
#define MICA_HALF_H

#include <stdint.h>

/* IEEE half <-> float, round to nearest even; exact for all halves. */
float mica_f16_to_f32(uint16_t h);
uint16_t mica_f32_to_f16(float f);
/* bfloat16 <-> float (round to nearest even; NaN stays NaN). */
float mica_bf16_to_f32(uint16_t h);
uint16_t mica_f32_to_bf16(float f);

#endif
