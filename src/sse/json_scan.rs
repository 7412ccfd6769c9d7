//! A strict JSON scanner over a request or response body: validates and skips values without building
//! them, walks object members and array elements, and decodes the few strings the request inspector and
//! the JSON-body observers read (they parse only the small members they need, never the whole body). Pure over bytes:
//! no I/O; iterative (no recursion), so nesting depth cannot overflow the stack; skipping allocates
//! nothing (but one bit per level past 64 levels of nesting).
//!
//! What it accepts is what simd-json (the parser the inspector used to build a DOM with) accepts, with
//! one exception, tested in `equivalence`: simd-json's slow number paths (integers of 19+ digits, floats
//! of 19+ significant digits) do not look at the byte after the number, so it accepts
//! `{"a":1.0000000000000000000x}` or `[1000000000000000000-]`, which are not JSON; this scanner rejects them. The
//! value-dependent number rules (integers outside i64/u64, floats that round to infinity) are simd-json's
//! own: numbers that could hit them are handed to simd-json itself. `\u` escapes follow simd-json too
//! (a high surrogate not followed by `\u` decodes as U+0000, a lone low surrogate is an error).

use std::ops::Range;

/// The body is not JSON (the caller maps this to `InspectError::InvalidJson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

type Scan<T> = Result<T, Invalid>;

/// Integers with at most this many digits fit u64 and i64, so simd-json accepts them without looking
/// at their value (it takes its overflow-checked path from 19 digits).
const SAFE_INT_DIGITS: usize = 17;
/// Floats without an exponent and with at most this many digits have an exact f64 significand
/// (< 2^53) and a power of ten within ±22: simd-json's fast path accepts them, never infinite.
const SAFE_FLOAT_DIGITS: usize = 15;
/// Deepest nesting inside one skipped value. The gateway refuses bodies nesting deeper than
/// `MAX_JSON_DEPTH` overall; a value nested this deep inside the body is past that, so the scan stops
/// here rather than walk it (the caller tells "too deep" from "not JSON" on this error path only).
pub(crate) const MAX_VALUE_DEPTH: usize = crate::sse::MAX_JSON_DEPTH;
/// Longest number token copied to the stack for simd-json's verdict; longer ones go to the heap.
const NUMBER_STACK_COPY: usize = 62;

#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

#[inline]
fn byte(b: &[u8], i: usize) -> Scan<u8> {
    b.get(i).copied().ok_or(Invalid)
}

const ONES: u64 = 0x0101_0101_0101_0101;

const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `x` that is `"`, `\\` or a control character (< 0x20), the bytes that end a
/// run of plain string text. The lowest set bit is exact (borrows only flag bytes above a true hit).
#[inline(always)]
fn string_specials(x: u64) -> u64 {
    let q = x ^ (ONES * u64::from(b'"'));
    let s = x ^ (ONES * u64::from(b'\\'));
    ((q.wrapping_sub(ONES) & !q) | (s.wrapping_sub(ONES) & !s) | (x.wrapping_sub(ONES * 0x20) & !x)) & HIGHS
}

#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let w: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// Index of the first `"`, `\\` or control byte at or after `j`, eight bytes at a time.
#[inline]
fn next_string_special(b: &[u8], mut j: usize) -> Option<usize> {
    while let (Some(x), Some(y)) = (word(b, j), word(b, j + 8)) {
        let (mx, my) = (string_specials(x), string_specials(y));
        if mx | my != 0 {
            return Some(if mx != 0 {
                j + (mx.trailing_zeros() / 8) as usize
            } else {
                j + 8 + (my.trailing_zeros() / 8) as usize
            });
        }
        j += 16;
    }
    if let Some(x) = word(b, j) {
        let m = string_specials(x);
        if m != 0 {
            return Some(j + (m.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|k| j + k)
}

/// String bytes are scanned this many at a time: one bit per byte in a u64 mask.
const BLOCK: usize = 64;
#[cfg(any(test, not(target_arch = "x86_64")))]
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

#[cfg(any(test, not(target_arch = "x86_64")))]
/// High bit set exactly in each zero byte of `v` (no borrow between bytes).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7) + LOW7) | v | LOW7)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
/// The high bits of the eight bytes of `hi` (each 0x80 or 0) gathered into the low eight bits.
#[inline(always)]
fn movemask(hi: u64) -> u64 {
    ((hi >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// One bit per byte of a 64-byte block: quotes, backslashes, control bytes (SSE2, part of every x86_64).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_masks(blk: &[u8; BLOCK]) -> (u64, u64, u64) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available; each load
    // reads one 16-byte `chunk` of `blk`, and an unaligned load has no alignment requirement.
    unsafe {
        let quote_v = _mm_set1_epi8(b'"' as i8);
        let slash_v = _mm_set1_epi8(b'\\' as i8);
        let max_control = _mm_set1_epi8(0x1F);
        let (mut quote, mut slash, mut control) = (0u64, 0u64, 0u64);
        for (k, chunk) in blk.chunks_exact(16).enumerate() {
            let x = _mm_loadu_si128(chunk.as_ptr().cast());
            let at = 16 * k;
            quote |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(x, quote_v)) as u16) << at;
            slash |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(x, slash_v)) as u16) << at;
            // Unsigned x <= 0x1F exactly where min(x, 0x1F) == x.
            let low = _mm_cmpeq_epi8(_mm_min_epu8(x, max_control), x);
            control |= u64::from(_mm_movemask_epi8(low) as u16) << at;
        }
        (quote, slash, control)
    }
}

/// One bit per byte of a 64-byte block: quotes, backslashes, control bytes (portable SWAR).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block_masks(blk: &[u8; BLOCK]) -> (u64, u64, u64) {
    block_masks_swar(blk)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn block_masks_swar(blk: &[u8; BLOCK]) -> (u64, u64, u64) {
    let (mut quote, mut slash, mut control) = (0, 0, 0);
    for (k, w) in blk.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let x = u64::from_le_bytes(a);
        quote |= movemask(zero_bytes(x ^ (ONES * u64::from(b'"')))) << (8 * k);
        slash |= movemask(zero_bytes(x ^ (ONES * u64::from(b'\\')))) << (8 * k);
        control |= movemask(zero_bytes(x & (ONES * 0xE0))) << (8 * k);
    }
    (quote, slash, control)
}

/// The bytes escaped by a backslash (the byte after each odd-length backslash run's last backslash),
/// carrying a run across blocks in `carry` (simdjson's branch-free run-parity method).
#[inline(always)]
fn escaped_bytes(slash: u64, carry: &mut u64) -> u64 {
    let slash = slash & !*carry;
    let follows = (slash << 1) | *carry;
    let odd_starts = slash & !EVEN_BITS & !follows;
    let (even_starts, overflow) = odd_starts.overflowing_add(slash);
    *carry = u64::from(overflow);
    (EVEN_BITS ^ (even_starts << 1)) & follows
}

/// Escape letters that stand alone (`\u` is validated apart).
fn is_simple_escape(c: u8) -> bool {
    matches!(c, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
}

/// End (exclusive) of the string whose opening quote is at `i`, validating escapes and control bytes.
/// UTF-8 is validated once for the whole body by the caller. Plain text is crossed eight bytes at a time
/// up to the first special byte; from a first backslash on (code, escaped quotes: escapes every few
/// bytes), the rest goes 64 bytes at a time without a branch per escape.
#[inline]
pub(crate) fn skip_string(b: &[u8], i: usize) -> Scan<usize> {
    let j = next_string_special(b, i + 1).ok_or(Invalid)?;
    match b[j] {
        b'"' => Ok(j + 1),
        b'\\' => skip_escaped_string(b, j),
        _ => Err(Invalid),
    }
}

/// End of a string from `j`, the first byte of a backslash run (not itself escaped).
fn skip_escaped_string(b: &[u8], mut j: usize) -> Scan<usize> {
    let mut carry = 0u64;
    // End of the last `\u` escape validated: a surrogate pair's second half is not checked again.
    let mut unicode_end = 0usize;
    loop {
        let mut padded = [0u8; BLOCK];
        let blk: &[u8; BLOCK] = match b.get(j..j + BLOCK) {
            Some(s) => s.try_into().map_err(|_| Invalid)?,
            None => {
                // Zero padding reads as control bytes: an unterminated string fails.
                let rest = b.get(j..).ok_or(Invalid)?;
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        let (quote, slash, control) = block_masks(blk);
        let escaped = escaped_bytes(slash, &mut carry);
        let end = quote & !escaped;
        let before_end = if end == 0 { !0 } else { (end & end.wrapping_neg()) - 1 };
        if control & before_end != 0 {
            return Err(Invalid);
        }
        let mut esc = escaped & before_end;
        while esc != 0 {
            let p = esc.trailing_zeros() as usize;
            esc &= esc - 1;
            let c = blk[p];
            if c == b'u' {
                if j + p > unicode_end {
                    unicode_end = escape(b, j + p - 1, &mut |_| {})?;
                }
            } else if !is_simple_escape(c) {
                return Err(Invalid);
            }
        }
        if end != 0 {
            return Ok(j + end.trailing_zeros() as usize + 1);
        }
        j += BLOCK;
    }
}

/// Four hex digits at `i` as a code unit, or None.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let mut v = 0u32;
    for k in 0..4 {
        let d = char::from(*b.get(i + k)?).to_digit(16)?;
        v = v << 4 | d;
    }
    Some(v)
}

/// Validates the escape whose backslash is at `i`, hands its decoded char to `out`, returns the index
/// after it. `\u` follows simd-json: a high surrogate followed by `\u` and a code unit >= 0xDC00 pairs
/// with it; one not followed by a valid `\uXXXX` decodes as U+0000; a lone low surrogate is invalid.
fn escape(b: &[u8], i: usize, out: &mut dyn FnMut(char)) -> Scan<usize> {
    let c = match byte(b, i + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(b, i + 2).ok_or(Invalid)?;
            match hi {
                0xD800..=0xDBFF => {
                    let lo = if b.get(i + 6..i + 8) == Some(b"\\u") { hex4(b, i + 8) } else { None };
                    match lo {
                        None => {
                            out('\0');
                            return Ok(i + 6);
                        }
                        Some(lo) if lo < 0xDC00 => return Err(Invalid),
                        Some(lo) => {
                            let cp = (((hi - 0xD800) << 10) | (lo - 0xDC00)) + 0x10000;
                            out(char::from_u32(cp).ok_or(Invalid)?);
                            return Ok(i + 12);
                        }
                    }
                }
                0xDC00..=0xDFFF => return Err(Invalid),
                _ => {
                    out(char::from_u32(hi).ok_or(Invalid)?);
                    return Ok(i + 6);
                }
            }
        }
        _ => return Err(Invalid),
    };
    out(c);
    Ok(i + 2)
}

/// The decoded text of the (already validated) string at `r` (quotes included).
pub(crate) fn decode_string(b: &[u8], r: Range<usize>) -> Scan<String> {
    let inner = b.get(r.start + 1..r.end - 1).ok_or(Invalid)?;
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).map(str::to_owned).map_err(|_| Invalid);
    }
    let mut s = String::with_capacity(inner.len());
    let mut j = r.start + 1;
    let end = r.end - 1;
    while j < end {
        let k = memchr::memchr(b'\\', &b[j..end]).map_or(end, |k| j + k);
        s.push_str(std::str::from_utf8(&b[j..k]).map_err(|_| Invalid)?);
        if k == end {
            break;
        }
        j = escape(b, k, &mut |c| s.push(c))?;
    }
    Ok(s)
}

/// Whether the (validated) string at `r` decodes to `name`; escaped keys are decoded first.
pub(crate) fn string_is(b: &[u8], r: &Range<usize>, name: &str) -> bool {
    let inner = &b[r.start + 1..r.end - 1];
    if memchr::memchr(b'\\', inner).is_none() {
        return inner == name.as_bytes();
    }
    decode_string(b, r.clone()).is_ok_and(|s| s == name)
}

/// End of the number starting at `i`: strict JSON grammar, then simd-json's value rules.
fn skip_number(b: &[u8], i: usize) -> Scan<usize> {
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    let int_start = j;
    match byte(b, j)? {
        b'0' => j += 1,
        b'1'..=b'9' => j = digits(j + 1),
        _ => return Err(Invalid),
    }
    let int_digits = j - int_start;
    let mut frac_digits = 0;
    let mut exp = false;
    if b.get(j) == Some(&b'.') {
        let end = digits(j + 1);
        frac_digits = end - (j + 1);
        if frac_digits == 0 {
            return Err(Invalid);
        }
        j = end;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        exp = true;
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            return Err(Invalid);
        }
        j = end;
    }
    let safe = !exp
        && if frac_digits == 0 { int_digits <= SAFE_INT_DIGITS } else { int_digits + frac_digits <= SAFE_FLOAT_DIGITS };
    if !safe && !simd_json_accepts_number(&b[i..j]) {
        return Err(Invalid);
    }
    Ok(j)
}

/// simd-json's verdict on one number token (range and overflow rules), asked in array context so the
/// byte after the token is a structural one, as inside the body.
#[cold]
fn simd_json_accepts_number(token: &[u8]) -> bool {
    let mut stack = [0u8; NUMBER_STACK_COPY + 2];
    let mut heap;
    let buf: &mut [u8] = if token.len() <= NUMBER_STACK_COPY {
        &mut stack[..token.len() + 2]
    } else {
        heap = vec![0u8; token.len() + 2];
        &mut heap
    };
    buf[0] = b'[';
    buf[1..=token.len()].copy_from_slice(token);
    buf[token.len() + 1] = b']';
    simd_json::to_tape(buf).is_ok()
}

/// End of the literal `word` at `i`.
fn skip_literal(b: &[u8], i: usize, word: &[u8]) -> Scan<usize> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(Invalid)
    }
}

/// Kinds of the open containers, one bit each (1 = object): 64 levels inline, deeper ones spill to a
/// vector, so any depth costs one bit, not a stack frame.
struct Open {
    depth: usize,
    low: u64,
    high: Vec<u64>,
}

impl Open {
    fn new() -> Self {
        Self { depth: 0, low: 0, high: Vec::new() }
    }

    fn push(&mut self, object: bool) -> Scan<()> {
        let d = self.depth;
        if d >= MAX_VALUE_DEPTH {
            return Err(Invalid);
        }
        if d < 64 {
            self.low = (self.low & !(1 << d)) | (u64::from(object) << d);
        } else {
            let (w, bit) = ((d - 64) / 64, (d - 64) % 64);
            if w == self.high.len() {
                self.high.push(0);
            }
            self.high[w] = (self.high[w] & !(1 << bit)) | (u64::from(object) << bit);
        }
        self.depth += 1;
        Ok(())
    }

    /// Whether the innermost open container is an object (None when none is open).
    fn top_is_object(&self) -> Option<bool> {
        let d = self.depth.checked_sub(1)?;
        let bit = if d < 64 { self.low >> d } else { self.high[(d - 64) / 64] >> ((d - 64) % 64) };
        Some(bit & 1 == 1)
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }
}

/// After an object's `{` or `,` (whitespace skipped, at `i`): the key string, the colon, and the index
/// where the member's value starts.
fn key_colon(b: &[u8], i: usize) -> Scan<usize> {
    if byte(b, i)? != b'"' {
        return Err(Invalid);
    }
    let k = skip_ws(b, skip_string(b, i)?);
    if byte(b, k)? != b':' {
        return Err(Invalid);
    }
    Ok(skip_ws(b, k + 1))
}

/// End (exclusive) of the JSON value starting exactly at `i`, validating all of it.
pub(crate) fn skip_value(b: &[u8], mut i: usize) -> Scan<usize> {
    let mut open = Open::new();
    'value: loop {
        // A value starts at `i`.
        match byte(b, i)? {
            b'{' => {
                i = skip_ws(b, i + 1);
                if byte(b, i)? == b'}' {
                    i += 1;
                } else {
                    open.push(true)?;
                    i = key_colon(b, i)?;
                    continue 'value;
                }
            }
            b'[' => {
                i = skip_ws(b, i + 1);
                if byte(b, i)? == b']' {
                    i += 1;
                } else {
                    open.push(false)?;
                    continue 'value;
                }
            }
            b'"' => i = skip_string(b, i)?,
            b't' => i = skip_literal(b, i, b"true")?,
            b'f' => i = skip_literal(b, i, b"false")?,
            b'n' => i = skip_literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = skip_number(b, i)?,
            _ => return Err(Invalid),
        }
        // A value ended at `i`: close containers until one continues.
        loop {
            let Some(object) = open.top_is_object() else {
                return Ok(i);
            };
            i = skip_ws(b, i);
            match (byte(b, i)?, object) {
                (b',', true) => {
                    i = key_colon(b, skip_ws(b, i + 1))?;
                    continue 'value;
                }
                (b',', false) => {
                    i = skip_ws(b, i + 1);
                    continue 'value;
                }
                (b'}', true) | (b']', false) => {
                    open.pop();
                    i += 1;
                }
                _ => return Err(Invalid),
            }
        }
    }
}

/// One member of an object: the key's range (quotes included) and the value's.
pub(crate) struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// Walks the members of the object whose `{` is at `open`, calling `each` for every member; `each`
/// returns where the value ends (usually `skip_value`). Returns the index after the `}`.
pub(crate) fn members(b: &[u8], open: usize, mut each: impl FnMut(Range<usize>, usize) -> Scan<usize>) -> Scan<usize> {
    let mut i = skip_ws(b, open + 1);
    if byte(b, i)? == b'}' {
        return Ok(i + 1);
    }
    loop {
        if byte(b, i)? != b'"' {
            return Err(Invalid);
        }
        let key_end = skip_string(b, i)?;
        let colon = skip_ws(b, key_end);
        if byte(b, colon)? != b':' {
            return Err(Invalid);
        }
        let vstart = skip_ws(b, colon + 1);
        let vend = each(i..key_end, vstart)?;
        i = skip_ws(b, vend);
        match byte(b, i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Ok(i + 1),
            _ => return Err(Invalid),
        }
    }
}

/// The members of an already validated object, in order (for the small objects of the last message).
pub(crate) fn member_list(b: &[u8], open: usize) -> Scan<Vec<Member>> {
    let mut out = Vec::new();
    members(b, open, |key, vstart| {
        let vend = skip_value(b, vstart)?;
        out.push(Member { key, value: vstart..vend });
        Ok(vend)
    })?;
    Ok(out)
}

/// The value of the last member named `name` (the provider's parser keeps the last duplicate).
pub(crate) fn last_member(b: &[u8], list: &[Member], name: &str) -> Option<Range<usize>> {
    list.iter().rev().find(|m| string_is(b, &m.key, name)).map(|m| m.value.clone())
}

/// How many of an array's last elements [`array_tail`] keeps: enough for the trailing tool results of
/// an agent's turn in nearly every request, without a second walk over the array.
pub(crate) const TAIL: usize = 16;

/// The last (up to [`TAIL`]) elements of an array, noted while it was validated.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    /// Index of the array's `[` (to walk it again when more than the kept elements are needed).
    pub open: usize,
    /// How many elements the array has.
    pub len: usize,
    ring: [Range<usize>; TAIL],
}

impl Tail {
    /// The range of the `k`-th element from the end (0 = the last), when it is one of the kept ones.
    pub fn back(&self, k: usize) -> Option<Range<usize>> {
        if k >= self.len.min(TAIL) {
            return None;
        }
        Some(self.ring[(self.len - 1 - k) % TAIL].clone())
    }
}

/// Walks the array whose `[` is at `open`, validating every element; returns the index after the `]`
/// and its last elements.
pub(crate) fn array_tail(b: &[u8], open: usize) -> Scan<(usize, Tail)> {
    let mut tail = Tail { open, len: 0, ring: std::array::from_fn(|_| 0..0) };
    let mut i = skip_ws(b, open + 1);
    if byte(b, i)? == b']' {
        return Ok((i + 1, tail));
    }
    loop {
        let end = skip_value(b, i)?;
        tail.ring[tail.len % TAIL] = i..end;
        tail.len += 1;
        i = skip_ws(b, end);
        match byte(b, i)? {
            b',' => i = skip_ws(b, i + 1),
            b']' => return Ok((i + 1, tail)),
            _ => return Err(Invalid),
        }
    }
}

/// The elements of an already validated array, in order.
pub(crate) fn element_list(b: &[u8], open: usize) -> Scan<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if byte(b, i)? == b']' {
        return Ok(out);
    }
    loop {
        let end = skip_value(b, i)?;
        out.push(i..end);
        i = skip_ws(b, end);
        match byte(b, i)? {
            b',' => i = skip_ws(b, i + 1),
            b']' => return Ok(out),
            _ => return Err(Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_masks_mark_quotes_backslashes_and_controls() {
        let mut blk = [b'a'; BLOCK];
        for (k, c) in [(0, b'"'), (15, b'\\'), (16, 0x1F), (33, 0), (47, b'"'), (63, b'\\'), (40, 0x20), (41, 0xC3)] {
            blk[k] = c;
        }
        let expected = (1 | 1 << 47, 1 << 15 | 1 << 63, 1 << 16 | 1 << 33);
        assert_eq!(block_masks(&blk), expected);
        assert_eq!(block_masks_swar(&blk), expected);
    }

    #[test]
    fn movemask_gathers_every_pattern() {
        for bits in 0u64..256 {
            let hi = (0..8).filter(|k| bits >> k & 1 == 1).map(|k| 0x80u64 << (8 * k)).sum();
            assert_eq!(movemask(hi), bits);
        }
    }

    #[test]
    fn escaped_bytes_follow_backslash_runs() {
        let mut carry = 0;
        // `\\"\"`: byte 1 (the second backslash) and byte 4 (the last quote) are escaped.
        let blk = br#"\\"\"#;
        let slash = blk.iter().enumerate().filter(|(_, &c)| c == b'\\').map(|(k, _)| 1u64 << k).sum();
        assert_eq!(escaped_bytes(slash, &mut carry), 0b1_0010);
        assert_eq!(carry, 0);
        let mut carry = 0;
        assert_eq!(escaped_bytes(1 << 63, &mut carry), 0);
        assert_eq!(carry, 1);
        assert_eq!(escaped_bytes(0b1, &mut carry), 0b1);
    }

    #[test]
    fn strings_across_blocks() {
        for n in 0..200 {
            for tail in [&br#"""#[..], br#"\"""#, br#"\\""#, br#"\u00e9""#, br#"\ud83d\ude00""#] {
                let mut s = vec![b'"'];
                s.extend(std::iter::repeat_n(b'a', n));
                s.extend_from_slice(tail);
                s.extend_from_slice(b" ");
                let quoted_tail_end = s.len() - 1;
                assert_eq!(skip_string(&s, 0), Ok(quoted_tail_end), "n {n} tail {tail:?}");
                assert_eq!(skip_string(&s[..s.len() - 2], 0), Err(Invalid), "unterminated n {n}");
            }
        }
    }
}
