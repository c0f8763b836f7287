//! Compiled twins of two pure-Python hot spots on the gateway's ingest path
//! (bench/README.md, "Ninth pass"):
//!
//! * `decode_book`: a Kafka record holding an `OrderBookUpdate` (docs/protocol.md §2)
//!   straight to the fields of `core.types.BookUpdate`, without protobuf's message
//!   objects (`schemas/codec.py` `decode` is the reference);
//! * `ladder_checksum`: the book checksum of docs/protocol.md §5 read straight from two
//!   `core.ladder.Ladder`s' price lists and quantity maps (`core/checksum.py`);
//! * `apply_verified`: a delta applied to those two ladders, checked against its
//!   checksum and undone on a mismatch (`core/book.py` `_apply_verified`).
//!
//! The fast path only takes what it is sure of. `decode_book` returns `None` for
//! anything else (another message kind, a field it does not know, a value the Python
//! code refuses, bytes that do not parse), and the caller then runs the Python decoder,
//! which gives the exact answer or error. So a record is accepted here only if the
//! reference accepts it with the same values; tests/unit/test_native.py checks both on
//! generated and mutated records.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyTuple};

/// Bumped whenever a signature or a result changes: `core/native.py` ignores a build
/// whose `ABI` is not the one it was written for (a stale extension after a pull).
const ABI: u32 = 1;

/// `schemas.codec.MAX_RECORD_BYTES`: larger records go to the reference, which refuses them.
const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// Levels per side that the checksum covers (`core.checksum.CHECKSUM_LEVELS`).
const CHECKSUM_LEVELS: usize = 10;

/// Protobuf wire types used by the schema.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

/// A cursor over protobuf bytes; every read is `None` past the end or when malformed.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return None; // more than 64 bits: leave it to the reference
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn double(&mut self) -> Option<f64> {
        let end = self.pos.checked_add(8)?;
        let bytes: [u8; 8] = self.buf.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(f64::from_le_bytes(bytes))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(len)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// (field number, wire type); field 0 and numbers past 2^29 - 1 are malformed.
    fn tag(&mut self) -> Option<(u64, u64)> {
        let tag = self.varint()?;
        let field = tag >> 3;
        if field == 0 || field > (1 << 29) - 1 {
            return None;
        }
        Some((field, tag & 7))
    }
}

/// One side's levels, each (price, quantity) as the reference validates them:
/// price finite and > 0, quantity finite and >= 0.
type Levels = Vec<(f64, f64)>;

fn price_level(data: &[u8]) -> Option<(f64, f64)> {
    let mut r = Reader::new(data);
    let (mut price, mut qty) = (0.0f64, 0.0f64);
    while !r.at_end() {
        match r.tag()? {
            (1, FIXED64) => price = r.double()?,
            (2, FIXED64) => qty = r.double()?,
            (3, VARINT) => {
                r.varint()?; // order_count: parsed and ignored, as the reference does
            }
            _ => return None, // per-venue quantities, unknown fields: the reference decides
        }
    }
    let valid = price.is_finite() && price > 0.0 && qty.is_finite() && qty >= 0.0;
    valid.then_some((price, qty))
}

/// `schemas.codec.SYMBOL_RE`: `[A-Z0-9]{1,16}-[A-Z0-9]{1,16}`, nothing after it.
fn valid_symbol(s: &[u8]) -> bool {
    let part = |p: &[u8]| {
        (1..=16).contains(&p.len())
            && p.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    match s.iter().position(|&b| b == b'-') {
        Some(dash) => part(&s[..dash]) && part(&s[dash + 1..]),
        None => false,
    }
}

struct Book<'a> {
    exchange: u64,
    symbol: &'a [u8],
    timestamp_ns: u64,
    sequence: u64,
    bids: Levels,
    asks: Levels,
    is_snapshot: bool,
    prev_sequence: u64,
    checksum: u64,
    depth: u64,
    ingest_ns: u64,
    gateway_ns: u64,
}

fn order_book_update(data: &[u8]) -> Option<Book<'_>> {
    let mut r = Reader::new(data);
    let mut b = Book {
        exchange: 0,
        symbol: b"",
        timestamp_ns: 0,
        sequence: 0,
        bids: Vec::new(),
        asks: Vec::new(),
        is_snapshot: false,
        prev_sequence: 0,
        checksum: 0,
        depth: 0,
        ingest_ns: 0,
        gateway_ns: 0,
    };
    while !r.at_end() {
        match r.tag()? {
            (1, VARINT) => b.exchange = r.varint()?,
            (2, LEN) => b.symbol = r.bytes()?,
            (3, VARINT) => b.timestamp_ns = r.varint()?,
            (4, VARINT) => b.sequence = r.varint()?,
            (5, LEN) => b.bids.push(price_level(r.bytes()?)?),
            (6, LEN) => b.asks.push(price_level(r.bytes()?)?),
            (7, VARINT) => b.is_snapshot = r.varint()? != 0,
            (8, VARINT) => b.prev_sequence = r.varint()?,
            (9, VARINT) => b.checksum = r.varint()?,
            (10, VARINT) => b.depth = r.varint()?,
            (11, VARINT) => b.ingest_ns = r.varint()?,
            (12, VARINT) => b.gateway_ns = r.varint()?,
            _ => return None, // replay fields, unknown fields, odd wire types
        }
    }
    // Known exchanges only (the reference refuses the rest); uint32 fields that fit
    // (protobuf would truncate a wider varint: rare enough to leave to the reference).
    let fits = b.checksum <= u64::from(u32::MAX) && b.depth <= u64::from(u32::MAX);
    ((1..=3).contains(&b.exchange) && fits && valid_symbol(b.symbol)).then_some(b)
}

/// The `MarketDataMessage` in `data` if it is nothing but one `order_book_update`.
fn market_data_book(data: &[u8]) -> Option<Book<'_>> {
    if data.len() > MAX_RECORD_BYTES {
        return None;
    }
    let mut r = Reader::new(data);
    let (1, LEN) = r.tag()? else { return None };
    let inner = r.bytes()?;
    if !r.at_end() {
        return None; // another oneof member, a second copy to merge: the reference decides
    }
    order_book_update(inner)
}

fn levels<'py>(py: Python<'py>, levels: &Levels) -> PyResult<Bound<'py, PyList>> {
    let items = levels
        .iter()
        .map(|&(p, q)| PyTuple::new(py, [PyFloat::new(py, p), PyFloat::new(py, q)]))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// A record's `BookUpdate` fields in `core.types.BookUpdate`'s order (the exchange as its
/// enum number), or None when the Python decoder must look at it.
#[pyfunction]
fn decode_book<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Ok(bytes) = data.cast::<PyBytes>() else {
        return Ok(None);
    };
    let Some(b) = market_data_book(bytes.as_bytes()) else {
        return Ok(None);
    };
    // valid_symbol accepted only ASCII, so this cannot fail
    let symbol = std::str::from_utf8(b.symbol).map_err(|e| PyTypeError::new_err(e.to_string()))?;
    let fields: [Bound<'py, PyAny>; 12] = [
        b.exchange.into_pyobject(py)?.into_any(),
        symbol.into_pyobject(py)?.into_any(),
        b.timestamp_ns.into_pyobject(py)?.into_any(),
        b.sequence.into_pyobject(py)?.into_any(),
        levels(py, &b.bids)?.into_any(),
        levels(py, &b.asks)?.into_any(),
        pyo3::types::PyBool::new(py, b.is_snapshot).to_owned().into_any(),
        b.prev_sequence.into_pyobject(py)?.into_any(),
        b.checksum.into_pyobject(py)?.into_any(),
        b.depth.into_pyobject(py)?.into_any(),
        b.ingest_ns.into_pyobject(py)?.into_any(),
        b.gateway_ns.into_pyobject(py)?.into_any(),
    ];
    Ok(Some(PyTuple::new(py, fields)?))
}

/// Append the best `CHECKSUM_LEVELS` of one side as little-endian (price, quantity)
/// doubles: `keys` ascending, read from the end when `desc` (bids).
fn pack_side(out: &mut Vec<u8>, keys: &Bound<'_, PyList>, qty: &Bound<'_, PyDict>, desc: bool) -> PyResult<()> {
    let len = keys.len();
    let n = len.min(CHECKSUM_LEVELS);
    for i in 0..n {
        let key = keys.get_item(if desc { len - 1 - i } else { i })?;
        let q = match qty.get_item(&key)? {
            Some(q) => q,
            None => return Err(pyo3::exceptions::PyKeyError::new_err(key.unbind())),
        };
        out.extend_from_slice(&key.extract::<f64>()?.to_le_bytes());
        out.extend_from_slice(&q.extract::<f64>()?.to_le_bytes());
    }
    Ok(())
}

/// docs/protocol.md §5 over a book's two ladders (`Ladder._keys`, `Ladder.qty`): CRC-32 of
/// the top 10 asks (ascending) then the top 10 bids (descending), as `zlib.crc32` of
/// `struct.pack("<dd", p, q)` for each.
#[pyfunction]
fn ladder_checksum(
    bid_keys: &Bound<'_, PyList>,
    bid_qty: &Bound<'_, PyDict>,
    ask_keys: &Bound<'_, PyList>,
    ask_qty: &Bound<'_, PyDict>,
) -> PyResult<u32> {
    let mut buf = Vec::with_capacity(CHECKSUM_LEVELS * 2 * 16);
    pack_side(&mut buf, ask_keys, ask_qty, false)?;
    pack_side(&mut buf, bid_keys, bid_qty, true)?;
    Ok(crc32fast::hash(&buf))
}

/// Position of the first key >= `price` (`bisect_left`) or > `price` (`bisect_right`)
/// in an ascending list of prices.
fn bisect(keys: &Bound<'_, PyList>, price: f64, right: bool) -> PyResult<usize> {
    let (mut lo, mut hi) = (0usize, keys.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let key: f64 = keys.get_item(mid)?.extract()?;
        if key < price || (right && key == price) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// One ladder side as `core.ladder.Ladder` keeps it: ascending prices and price -> quantity.
struct Side<'a, 'py> {
    keys: &'a Bound<'py, PyList>,
    qty: &'a Bound<'py, PyDict>,
}

impl<'py> Side<'_, 'py> {
    /// `Ladder.set`: insert or overwrite a level.
    fn set(&self, price: &Bound<'py, PyAny>, p: f64, quantity: &Bound<'py, PyAny>) -> PyResult<()> {
        if !self.qty.contains(price)? {
            self.keys.insert(bisect(self.keys, p, true)?, price)?;
        }
        self.qty.set_item(price, quantity)
    }

    /// `Ladder.remove`: delete a level if present.
    fn remove(&self, price: &Bound<'py, PyAny>, p: f64) -> PyResult<()> {
        if self.qty.contains(price)? {
            self.qty.del_item(price)?;
            self.keys.del_item(bisect(self.keys, p, false)?)?;
        }
        Ok(())
    }
}

/// A delta's levels as (price object, price, quantity object, quantity); None unless
/// they are a list of tuples of two floats (what the decoders make).
type DeltaLevel<'py> = (Bound<'py, PyAny>, f64, Bound<'py, PyAny>, f64);

fn delta_levels<'py>(levels: &Bound<'py, PyAny>) -> Option<Vec<DeltaLevel<'py>>> {
    levels
        .cast::<PyList>()
        .ok()?
        .iter()
        .map(|level| {
            let (price, quantity) = level.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>().ok()?;
            let p = price.cast_exact::<PyFloat>().ok()?.value();
            let q = quantity.cast_exact::<PyFloat>().ok()?.value();
            Some((price, p, quantity, q))
        })
        .collect()
}

/// `core.book.OrderBook._apply_verified` over a book's two `Ladder`s: apply a delta's
/// levels (quantity 0 removes), compare the checksum with `checksum`, and on a mismatch
/// undo it. True: applied and verified; False: mismatch, book unchanged; None: a level
/// that is not a tuple of two floats, or a checksum outside u64, nothing touched (the
/// Python code then runs). The
/// caller has validated the levels (`_check_delta`: finite, price > 0, quantity >= 0).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn apply_verified<'py>(
    bid_keys: &Bound<'py, PyList>,
    bid_qty: &Bound<'py, PyDict>,
    ask_keys: &Bound<'py, PyList>,
    ask_qty: &Bound<'py, PyDict>,
    bids: &Bound<'py, PyAny>,
    asks: &Bound<'py, PyAny>,
    checksum: &Bound<'py, PyAny>,
) -> PyResult<Option<bool>> {
    // A checksum no u64 holds (negative, wider, not an int) cannot match: the Python code
    // says so, not an OverflowError from here.
    let Ok(checksum) = checksum.extract::<u64>() else {
        return Ok(None);
    };
    let (Some(bid_levels), Some(ask_levels)) = (delta_levels(bids), delta_levels(asks)) else {
        return Ok(None);
    };
    let bid = Side { keys: bid_keys, qty: bid_qty };
    let ask = Side { keys: ask_keys, qty: ask_qty };
    // What each touched price held before, in the delta's order (as the Python code keeps it).
    let mut undo = Vec::with_capacity(bid_levels.len() + ask_levels.len());
    for (side, levels) in [(&bid, &bid_levels), (&ask, &ask_levels)] {
        for (price, p, _, _) in levels {
            undo.push((side, price, *p, side.qty.get_item(price)?));
        }
    }
    for (side, levels) in [(&bid, &bid_levels), (&ask, &ask_levels)] {
        for (price, p, quantity, q) in levels {
            if *q != 0.0 {
                side.set(price, *p, quantity)?;
            } else {
                side.remove(price, *p)?;
            }
        }
    }
    if u64::from(ladder_checksum(bid_keys, bid_qty, ask_keys, ask_qty)?) == checksum {
        return Ok(Some(true));
    }
    for (side, price, p, old) in undo.iter().rev() {
        match old {
            None => side.remove(price, *p)?,
            Some(old) => side.set(price, *p, old)?,
        }
    }
    Ok(Some(false))
}

#[pymodule]
fn mdgw_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The switch for a run of the pure-Python path (an A/B, a suspected bug) without
    // uninstalling; core/native.py reports why the extension is not in use.
    if std::env::var_os("MDGW_NATIVE").is_some_and(|v| v == "0") {
        return Err(pyo3::exceptions::PyImportError::new_err("switched off by MDGW_NATIVE=0"));
    }
    m.add("ABI", ABI)?;
    m.add_function(wrap_pyfunction!(decode_book, m)?)?;
    m.add_function(wrap_pyfunction!(ladder_checksum, m)?)?;
    m.add_function(wrap_pyfunction!(apply_verified, m)?)?;
    Ok(())
}
