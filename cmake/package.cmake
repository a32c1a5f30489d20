# Install rules and the Debian package (CPack), for deployment on a NitroTPM
# instance (docs/aws.md). In a build tree: `cpack -G DEB` makes
# modelseal_<version>_<arch>.deb.
#
# Layout (prefix /usr):
#   bin/modelseal                         RUNPATH $ORIGIN/../lib/modelseal/lib
#   lib/modelseal/lib/                    llama.cpp's libllama, libggml* (private)
#   lib/systemd/system/modelseal.service  the hardened unit (deploy/systemd)
#   lib/sysusers.d/modelseal.conf         the service user
#   lib/udev/rules.d/61-modelseal-tpm.rules  /dev/tpm0 for group modelseal
#   share/modelseal/web/                  the web UI (web/dist, when built)
#   share/doc/modelseal/                  README, docs/*.md, examples/
# The maintainer scripts (deploy/debian) make the user and /etc/modelseal.

include(GNUInstallDirs)

set(MODELSEAL_PRIVATE_LIBDIR "lib/modelseal/lib")

install(TARGETS modelseal RUNTIME DESTINATION bin COMPONENT modelseal)
# The binary finds llama.cpp next to itself, wherever the package root is.
set_target_properties(modelseal PROPERTIES INSTALL_RPATH "\$ORIGIN/../${MODELSEAL_PRIVATE_LIBDIR}")

# llama.cpp's shared libraries, with their soname links. Their own RUNPATH is
# $ORIGIN/../lib, which from lib/modelseal/lib is that same directory.
install(DIRECTORY "${MODELSEAL_LLAMA_DIR}/prefix/lib/"
  DESTINATION "${MODELSEAL_PRIVATE_LIBDIR}" COMPONENT modelseal
  USE_SOURCE_PERMISSIONS
  FILES_MATCHING PATTERN "libllama.so*" PATTERN "libllama-common.so*" PATTERN "libggml*.so*"
  PATTERN "libllama-bench*" EXCLUDE PATTERN "libllama-batched-bench*" EXCLUDE
  PATTERN "*.so" EXCLUDE)
# The CPU backend variants (libggml-cpu-<variant>.so, no soname), chosen at run time
# by the engine; it finds them next to the binary (../lib/modelseal/lib).
install(DIRECTORY "${MODELSEAL_LLAMA_DIR}/prefix/lib/"
  DESTINATION "${MODELSEAL_PRIVATE_LIBDIR}" COMPONENT modelseal
  USE_SOURCE_PERMISSIONS
  FILES_MATCHING PATTERN "libggml-cpu-*.so")

install(FILES deploy/systemd/modelseal.service
  DESTINATION lib/systemd/system COMPONENT modelseal)
install(FILES deploy/systemd/modelseal.sysusers
  DESTINATION lib/sysusers.d RENAME modelseal.conf COMPONENT modelseal)
install(FILES deploy/udev/61-modelseal-tpm.rules
  DESTINATION lib/udev/rules.d COMPONENT modelseal)
install(FILES deploy/etc/modelseal.conf deploy/systemd/gpu.conf
  DESTINATION share/doc/modelseal/examples COMPONENT modelseal)
install(FILES README.md DESTINATION share/doc/modelseal COMPONENT modelseal)
install(DIRECTORY docs/ DESTINATION share/doc/modelseal COMPONENT modelseal
  FILES_MATCHING PATTERN "*.md")

# The web UI, when it has been built (npm run build in web/). Checked when
# CMake configures: configure again after building it.
if(EXISTS "${PROJECT_SOURCE_DIR}/web/dist/index.html")
  install(DIRECTORY web/dist/ DESTINATION share/modelseal/web COMPONENT modelseal)
  set(MODELSEAL_PACKAGE_WEB ON)
else()
  message(STATUS "package: web/dist not built; the package will have no web UI")
  set(MODELSEAL_PACKAGE_WEB OFF)
endif()

set(CPACK_PACKAGE_NAME modelseal)
set(CPACK_PACKAGE_VENDOR modelseal)
set(CPACK_PACKAGE_CONTACT "modelseal maintainers <modelseal@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "attestation-gated sharing and serving of LLM weights (NitroTPM, KMS, S3)")
set(CPACK_PACKAGE_DESCRIPTION
  "modelseal seals GGUF models under a KMS key whose policy releases the data key only to machines whose TPM PCRs match, loads them into memory only on such a machine, measures them into PCR15 and serves chat from them.")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared-library dependencies from dpkg-shlibdeps (libssl3, libcurl4, libtss2-*,
# libgomp1, ...), plus what is loaded at run time and so invisible to it: the
# tss2 TCTI for /dev/tpm0, and systemd-sysusers for the user.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libtss2-tcti-device0, systemd, ca-certificates")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${PROJECT_SOURCE_DIR}/deploy/debian/postinst"
  "${PROJECT_SOURCE_DIR}/deploy/debian/prerm"
  "${PROJECT_SOURCE_DIR}/deploy/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
