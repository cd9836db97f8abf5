'use strict';

// Helpers that make JavaScript strings safe to send as Avro `string` values.

// avsc 5.7 encodes short strings with its own UTF-8 loop, which writes a lone
// surrogate as an invalid 3-byte sequence, so every string that leaves the
// worker goes through wellFormed() first.
function wellFormed(text) {
  return text.toWellFormed();
}

/**
 * Cuts `text` to at most `maxBytes` bytes of UTF-8 without splitting a
 * character, and returns the kept text and the number of bytes cut.
 */
function truncateUtf8(text, maxBytes) {
  const totalBytes = Buffer.byteLength(text, 'utf8');
  if (totalBytes <= maxBytes) {
    return { text, cutBytes: 0 };
  }

  const bytes = Buffer.from(text, 'utf8');
  let end = maxBytes;
  // A continuation byte (10xxxxxx) at `end` means the character that owns it
  // started earlier, so move back to that character's first byte.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) {
    end -= 1;
  }
  return { text: bytes.toString('utf8', 0, end), cutBytes: totalBytes - end };
}

/**
 * Returns `text` made well-formed and, when longer than `maxBytes` of UTF-8,
 * cut to that size with a marker such as "... [truncated 12345 bytes]" appended.
 */
function limitText(text, maxBytes) {
  const { text: kept, cutBytes } = truncateUtf8(wellFormed(text), maxBytes);
  if (cutBytes === 0) {
    return kept;
  }
  return `${kept}... [truncated ${cutBytes} bytes]`;
}

module.exports = { wellFormed, truncateUtf8, limitText };
