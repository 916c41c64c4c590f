// The viewer's HTML page, with /*LOOM_TITLE*/ and /*LOOM_DATA*/ to fill (viewer_page.cpp).
#pragma once

namespace loom::view {

extern const char* const kViewerPage;

}  // namespace loom::view
