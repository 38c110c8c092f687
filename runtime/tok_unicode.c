/* UTF-8 and Unicode classes for the tokenizer. */
#include "tok_internal.h"

uint16_t mica_tok_uclass(uint32_t cp)
{
    if (cp < 0x80)
        return mica_tok_uclass_ascii[cp];
    if (cp >= 0x110000)
        return MICA_TOK_U_UNDEFINED;
    /* last range whose start <= cp; the table ends with start 0x110000 */
    size_t lo = 0, hi = mica_tok_uclass_range_count - 1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((mica_tok_uclass_ranges[mid] >> 9) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return (uint16_t)(mica_tok_uclass_ranges[lo] & 0x1FFu);
}

static bool is_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

uint32_t mica_tok_utf8_decode(const uint8_t *s, size_t n, size_t *adv)
{
    uint8_t c = s[0];
    if (!(c & 0x80)) {
        *adv = 1;
        return c;
    }
    if ((c & 0x40) && !(c & 0x20)) {
        if (n >= 2 && is_cont(s[1])) {
            *adv = 2;
            return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3Fu);
        }
    } else if ((c & 0x40) && !(c & 0x10)) {
        if (n >= 3 && is_cont(s[1]) && is_cont(s[2])) {
            *adv = 3;
            return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3Fu);
        }
    } else if ((c & 0x40) && !(c & 0x08)) {
        if (n >= 4 && is_cont(s[1]) && is_cont(s[2]) && is_cont(s[3])) {
            *adv = 4;
            return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                   ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3Fu);
        }
    }
    *adv = 1;
    return 0xFFFD;
}

size_t mica_tok_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp <= 0x7F) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp <= 0x7FF) {
        out[0] = (uint8_t)(0xC0 | ((cp >> 6) & 0x1F));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp <= 0xFFFF) {
        out[0] = (uint8_t)(0xE0 | ((cp >> 12) & 0x0F));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

const char *mica_tokenizer_unicode_version(void)
{
    return mica_tok_unicode_version;
}
