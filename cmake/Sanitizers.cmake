# Sanitizer and coverage switches apply to every target in the tree.
if(TP_SANITIZE AND TP_TSAN)
  message(FATAL_ERROR "TP_SANITIZE and TP_TSAN cannot be combined")
endif()

if(TP_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()

if(TP_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=thread)
endif()

if(TP_COVERAGE)
  add_compile_options(--coverage -O0 -g)
  add_link_options(--coverage)
endif()
