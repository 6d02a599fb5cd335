# Embeds a text file as a NUL-terminated C array, so a Lua script can live
# in its own .lua file (read, reviewed and diffed as Lua) and still ship
# inside the binary.
#
#   cmake -DIN=<file> -DOUT=<file.c> -DNAME=<symbol> -P EmbedText.cmake
#
# writes `const char NAME[] = { ..., 0 };`.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)"
  "\\1\n\t" hex "${hex}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by cmake/EmbedText.cmake: do not edit. */\n"
  "extern const char ${NAME}[];\n"
  "const char ${NAME}[] = {\n\t${hex}0x00\n};\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
