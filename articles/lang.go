package articles

import "strings"

// iso6391 lists every two-letter ISO 639-1 language code (including the
// withdrawn "bh", which older files may still carry). A language suffix or
// code outside this table is a problem rather than a new language, so a typo
// such as "index.fe.md" cannot silently publish a fourth language.
const iso6391 = "" +
	"aa ab ae af ak am an ar as av ay az " +
	"ba be bg bh bi bm bn bo br bs " +
	"ca ce ch co cr cs cu cv cy " +
	"da de dv dz " +
	"ee el en eo es et eu " +
	"fa ff fi fj fo fr fy " +
	"ga gd gl gn gu gv " +
	"ha he hi ho hr ht hu hy hz " +
	"ia id ie ig ii ik io is it iu " +
	"ja jv " +
	"ka kg ki kj kk kl km kn ko kr ks ku kv kw ky " +
	"la lb lg li ln lo lt lu lv " +
	"mg mh mi mk ml mn mr ms mt my " +
	"na nb nd ne ng nl nn no nr nv ny " +
	"oc oj om or os " +
	"pa pi pl ps pt " +
	"qu " +
	"rm rn ro ru rw " +
	"sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw " +
	"ta te tg th ti tk tl tn to tr ts tt tw ty " +
	"ug uk ur uz " +
	"ve vi vo " +
	"wa wo " +
	"xh " +
	"yi yo " +
	"za zh zu"

// ValidLanguage reports whether code is a two-letter ISO 639-1 code
// (lower case, as Post.Lang holds it).
func ValidLanguage(code string) bool {
	if len(code) != 2 || code[0] < 'a' || code[0] > 'z' || code[1] < 'a' || code[1] > 'z' {
		return false
	}
	// Codes are two letters separated by single spaces, so a match at an
	// even offset is a whole code and never the tail of one plus the head
	// of the next.
	for i := 0; ; {
		j := strings.Index(iso6391[i:], code)
		if j < 0 {
			return false
		}
		if (i+j)%3 == 0 {
			return true
		}
		i += j + 1
	}
}
