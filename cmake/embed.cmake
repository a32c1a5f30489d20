# cmake -DIN=FILE -DOUT=FILE.cpp -DNAME=symbol -P embed.cmake: writes a C++ source
# defining `extern const char NAME[]` (the file's bytes, NUL-terminated) and
# `extern const unsigned long NAME_size`, in namespace modelseal.
file(READ "${IN}" _hex HEX)
string(LENGTH "${_hex}" _len)
math(EXPR _size "${_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," _bytes "${_hex}")
string(REGEX REPLACE "(('\\\\x[0-9a-f][0-9a-f]',){16})" "\\1\n" _bytes "${_bytes}")
file(WRITE "${OUT}.tmp"
  "// Generated from ${IN} by cmake/embed.cmake.\nnamespace modelseal {\n"
  "extern const char ${NAME}[];\nextern const unsigned long ${NAME}_size;\n"
  "const char ${NAME}[] = {\n${_bytes}0};\nconst unsigned long ${NAME}_size = ${_size};\n}\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
