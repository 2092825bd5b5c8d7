//! The Salsa20/8 double rounds, written once for any word type that can add, rotate and xor.

/// Runs the four Salsa20/8 double rounds over `$x` (16 words) in place, given `$add(a, b)`,
/// `$rotl(v, n)` and `$xor(a, b)` for the word type.
macro_rules! salsa8_rounds {
    ($x:ident, $add:path, $rotl:ident, $xor:path) => {{
        macro_rules! qr {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                $x[$b] = $xor($x[$b], $rotl!($add($x[$a], $x[$d]), 7));
                $x[$c] = $xor($x[$c], $rotl!($add($x[$b], $x[$a]), 9));
                $x[$d] = $xor($x[$d], $rotl!($add($x[$c], $x[$b]), 13));
                $x[$a] = $xor($x[$a], $rotl!($add($x[$d], $x[$c]), 18));
            };
        }
        for _ in 0..4 {
            qr!(0, 4, 8, 12);
            qr!(5, 9, 13, 1);
            qr!(10, 14, 2, 6);
            qr!(15, 3, 7, 11);
            qr!(0, 1, 2, 3);
            qr!(5, 6, 7, 4);
            qr!(10, 11, 8, 9);
            qr!(15, 12, 13, 14);
        }
    }};
}

pub(crate) use salsa8_rounds;
