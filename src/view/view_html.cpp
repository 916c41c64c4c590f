// view_html: the viewer page with the executable's JSON inside a <script> element.
#include <fstream>

#include "loom/error.h"
#include "loom/view.h"
#include "view/graph_json.h"
#include "view/viewer_page.h"

namespace loom {

namespace {

void replace_once(std::string& text, const std::string& marker, const std::string& with) {
  size_t at = text.find(marker);
  if (at != std::string::npos) text.replace(at, marker.size(), with);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string view_html(const Executable& exe, const std::string& title) {
  // Names in the graph may hold anything: invalid UTF-8 is replaced, and every '<' (only
  // ever inside a JSON string) is written \u003c, so no name can end the script element.
  std::string data =
      view::executable_json(exe).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string safe;
  safe.reserve(data.size());
  for (char c : data) {
    if (c == '<')
      safe += "\\u003c";
    else
      safe += c;
  }
  std::string page = view::kViewerPage;
  replace_once(page, "/*LOOM_TITLE*/", html_escape(title));
  replace_once(page, "/*LOOM_DATA*/", safe);
  return page;
}

void write_view(const Executable& exe, const std::string& path, const std::string& title) {
  std::string page = view_html(exe, title);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(ErrorKind::io, "view: cannot write '" + path + "'");
  out << page;
  out.close();
  if (!out) fail(ErrorKind::io, "view: writing '" + path + "' failed");
}

}  // namespace loom
