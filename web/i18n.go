package web

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// The page chrome (labels, hints, error texts) follows the language of the
// page: the article's language on article pages, the site language elsewhere.
// The seed articles are in English, French and Italian; other languages fall
// back to English.
var messages = map[string]map[string]string{
	"en": {
		"comments_title":       "Replies from the fediverse",
		"count_replies":        "Replies: %d",
		"count_likes":          "Likes: %d",
		"count_boosts":         "Boosts: %d",
		"count_quotes":         "Quotes: %d",
		"no_comments":          "No replies yet.",
		"comments_pages":       "Pages of replies",
		"comments_prev":        "Earlier replies",
		"comments_next":        "Later replies",
		"edited":               "edited",
		"in_reply_to":          "in reply to %s",
		"see_original":         "See the original",
		"reply_title":          "Reply from your server",
		"reply_hint":           "Replies are written on the fediverse and shown here. Copy this article's address, paste it into the search of your Mastodon, GoToSocial, Misskey or other fediverse app, and reply to the post it finds. Public replies appear on this page.",
		"reply_address":        "Address of this article",
		"reply_how":            "How replying works",
		"skip":                 "Skip to content",
		"home":                 "Home",
		"tags":                 "Tags",
		"feeds":                "Feeds",
		"nav":                  "Site",
		"avatar_alt":           "Avatar of %s",
		"follow_title":         "Follow from your instance",
		"follow_hint":          "Search for this address in your Mastodon, GoToSocial, Misskey or other fediverse app, then follow it. Every article reaches your timeline.",
		"follow_handle":        "Fediverse address",
		"articles":             "Articles",
		"no_articles":          "No articles yet.",
		"published":            "Published",
		"updated":              "Updated",
		"language":             "Language",
		"pagination":           "Pages",
		"prev":                 "Newer articles",
		"next":                 "Older articles",
		"page_of":              "Page %d of %d",
		"translations":         "This article in other languages",
		"attribution":          "Credits",
		"author":               "Author",
		"licence":              "Licence",
		"source":               "Original publication",
		"date_note":            "About the date",
		"content_warning":      "Content warning",
		"tag_title":            "Articles tagged “%s”",
		"tags_title":           "All tags",
		"no_tags":              "No tags yet.",
		"feed_atom":            "Atom feed",
		"feed_rss":             "RSS feed",
		"feeds_by_language":    "Feeds by language",
		"notfound_title":       "Page not found",
		"notfound_text":        "There is nothing at this address. The article may have moved, or the link may be mistyped.",
		"gone_title":           "Article removed",
		"gone_text":            "This article was published here but has been removed.",
		"badrequest_title":     "Bad request",
		"badrequest_text":      "This address was asked for in a way the site does not understand.",
		"notallowed_title":     "Method not allowed",
		"notallowed_text":      "This address does not answer that kind of request.",
		"error_title":          "Something went wrong",
		"error_text":           "The site could not answer. Please try again in a moment.",
		"back_home":            "Back to the home page",
		"interact_title":       "Following and interacting",
		"interact_text":        "This site is a publishing bot, not a social network with accounts: there is nothing to log in to here. To follow it or to reply to an article, use your own fediverse account.",
		"interact_steps":       "Copy the address below, paste it into the search of your fediverse app and choose Follow. To reply to an article, paste the article's address instead.",
		"interact_object":      "You asked about",
		"visit_label":          "Your fediverse address or server",
		"visit_follow":         "Follow from my server",
		"visit_hint":           "Or type your address (@you@your.server) and your own server opens this post, ready for you to reply, like or boost it.",
		"visit_reply":          "Reply",
		"visit_like":           "Like",
		"visit_boost":          "Boost",
		"visit_title":          "Go to your server",
		"visit_copy":           "You can still copy this address and paste it into the search of your fediverse app:",
		"visit_err_empty":      "Type your fediverse address, like @you@your.server, or just your server's name.",
		"visit_err_path":       "Type your address as @name@server, without https:// or a path after the server's name.",
		"visit_err_port":       "A fediverse address has no port number: type it as @name@server.",
		"visit_err_ip":         "Type your server's name, not an IP address.",
		"visit_err_private":    "This server is a local or private address: crieur only visits public fediverse servers.",
		"visit_err_lookalike":  "This server's name mixes letters of different alphabets that look alike: crieur does not visit such names. Check the address you typed.",
		"visit_err_script":     "This is not a fediverse address. Type it as @name@server.",
		"visit_err_bad":        "This does not look like a fediverse address. Type it as @name@server.",
		"visit_err_blocked":    "This site does not interact with that server.",
		"visit_err_dead":       "Your server did not answer, or does not know this address. Check it, or try again later.",
		"visit_err_nopage":     "Your server has no web page for this: search for the address below in your fediverse app instead.",
		"visit_err_needhandle": "crieur cannot tell which page of this server to open: type your full address, like @you@your.server.",
		"visit_err_badpage":    "Your server answered with a page that is not on that server: crieur does not send you there.",
		"visit_err_busy":       "Too many visitors are being sent to their servers right now: try again in a moment.",
		"visit_err_self":       "That is this site's own address: type the address of your account on your own server.",
		"powered_by":           "Published with %s",
	},
	"fr": {
		"comments_title":       "Réponses du fédivers",
		"count_replies":        "Réponses : %d",
		"count_likes":          "J’aime : %d",
		"count_boosts":         "Partages : %d",
		"count_quotes":         "Citations : %d",
		"no_comments":          "Pas encore de réponse.",
		"comments_pages":       "Pages de réponses",
		"comments_prev":        "Réponses précédentes",
		"comments_next":        "Réponses suivantes",
		"edited":               "modifié",
		"in_reply_to":          "en réponse à %s",
		"see_original":         "Voir l’original",
		"reply_title":          "Répondre depuis votre serveur",
		"reply_hint":           "Les réponses s’écrivent dans le fédivers et s’affichent ici. Copiez l’adresse de cet article, collez-la dans la recherche de votre application Mastodon, GoToSocial, Misskey ou autre, et répondez à la publication trouvée. Les réponses publiques apparaissent sur cette page.",
		"reply_address":        "Adresse de cet article",
		"reply_how":            "Comment répondre",
		"skip":                 "Aller au contenu",
		"home":                 "Accueil",
		"tags":                 "Mots-clés",
		"feeds":                "Flux",
		"nav":                  "Site",
		"avatar_alt":           "Avatar de %s",
		"follow_title":         "Suivre depuis votre instance",
		"follow_hint":          "Cherchez cette adresse dans votre application Mastodon, GoToSocial, Misskey ou autre application du fédivers, puis abonnez-vous. Chaque article arrivera dans votre fil.",
		"follow_handle":        "Adresse dans le fédivers",
		"articles":             "Articles",
		"no_articles":          "Aucun article pour l’instant.",
		"published":            "Publié le",
		"updated":              "Mis à jour le",
		"language":             "Langue",
		"pagination":           "Pages",
		"prev":                 "Articles plus récents",
		"next":                 "Articles plus anciens",
		"page_of":              "Page %d sur %d",
		"translations":         "Cet article dans d’autres langues",
		"attribution":          "Crédits",
		"author":               "Auteur",
		"licence":              "Licence",
		"source":               "Publication d’origine",
		"date_note":            "À propos de la date",
		"content_warning":      "Avertissement",
		"tag_title":            "Articles avec le mot-clé « %s »",
		"tags_title":           "Tous les mots-clés",
		"no_tags":              "Aucun mot-clé pour l’instant.",
		"feed_atom":            "Flux Atom",
		"feed_rss":             "Flux RSS",
		"feeds_by_language":    "Flux par langue",
		"notfound_title":       "Page introuvable",
		"notfound_text":        "Il n’y a rien à cette adresse. L’article a peut-être été déplacé, ou le lien contient une faute de frappe.",
		"gone_title":           "Article retiré",
		"gone_text":            "Cet article a été publié ici mais il a été retiré.",
		"badrequest_title":     "Requête incorrecte",
		"badrequest_text":      "Cette adresse a été demandée d’une façon que le site ne comprend pas.",
		"notallowed_title":     "Méthode non autorisée",
		"notallowed_text":      "Cette adresse ne répond pas à ce type de requête.",
		"error_title":          "Une erreur est survenue",
		"error_text":           "Le site n’a pas pu répondre. Merci de réessayer dans un instant.",
		"back_home":            "Retour à l’accueil",
		"interact_title":       "Suivre et interagir",
		"interact_text":        "Ce site est un robot de publication, pas un réseau social avec des comptes : il n’y a rien à quoi se connecter ici. Pour le suivre ou répondre à un article, utilisez votre propre compte dans le fédivers.",
		"interact_steps":       "Copiez l’adresse ci-dessous, collez-la dans la recherche de votre application du fédivers et choisissez Suivre. Pour répondre à un article, collez plutôt l’adresse de l’article.",
		"interact_object":      "Vous avez demandé",
		"visit_label":          "Votre adresse dans le fédivers, ou votre serveur",
		"visit_follow":         "Suivre depuis mon serveur",
		"visit_hint":           "Ou tapez votre adresse (@vous@votre.serveur) : votre propre serveur ouvre cette publication, prête pour répondre, aimer ou partager.",
		"visit_reply":          "Répondre",
		"visit_like":           "Aimer",
		"visit_boost":          "Partager",
		"visit_title":          "Aller sur votre serveur",
		"visit_copy":           "Vous pouvez aussi copier cette adresse et la coller dans la recherche de votre application du fédivers :",
		"visit_err_empty":      "Tapez votre adresse dans le fédivers, comme @vous@votre.serveur, ou seulement le nom de votre serveur.",
		"visit_err_path":       "Tapez votre adresse sous la forme @nom@serveur, sans https:// ni chemin après le nom du serveur.",
		"visit_err_port":       "Une adresse du fédivers n’a pas de numéro de port : tapez-la sous la forme @nom@serveur.",
		"visit_err_ip":         "Tapez le nom de votre serveur, pas une adresse IP.",
		"visit_err_private":    "Ce serveur est une adresse locale ou privée : crieur ne visite que des serveurs publics du fédivers.",
		"visit_err_lookalike":  "Le nom de ce serveur mélange des lettres d’alphabets différents qui se ressemblent : crieur ne visite pas de tels noms. Vérifiez l’adresse tapée.",
		"visit_err_script":     "Ce n’est pas une adresse du fédivers. Tapez-la sous la forme @nom@serveur.",
		"visit_err_bad":        "Cela ne ressemble pas à une adresse du fédivers. Tapez-la sous la forme @nom@serveur.",
		"visit_err_blocked":    "Ce site n’interagit pas avec ce serveur.",
		"visit_err_dead":       "Votre serveur n’a pas répondu, ou ne connaît pas cette adresse. Vérifiez-la, ou réessayez plus tard.",
		"visit_err_nopage":     "Votre serveur n’a pas de page web pour cela : cherchez plutôt l’adresse ci-dessous dans votre application du fédivers.",
		"visit_err_needhandle": "crieur ne sait pas quelle page de ce serveur ouvrir : tapez votre adresse complète, comme @vous@votre.serveur.",
		"visit_err_badpage":    "Votre serveur a répondu avec une page qui n’est pas sur ce serveur : crieur ne vous y envoie pas.",
		"visit_err_busy":       "Trop de visiteurs sont envoyés vers leur serveur en ce moment : réessayez dans un instant.",
		"visit_err_self":       "C’est l’adresse de ce site : tapez l’adresse de votre compte sur votre propre serveur.",
		"powered_by":           "Publié avec %s",
	},
	"it": {
		"comments_title":       "Risposte dal fediverso",
		"count_replies":        "Risposte: %d",
		"count_likes":          "Mi piace: %d",
		"count_boosts":         "Condivisioni: %d",
		"count_quotes":         "Citazioni: %d",
		"no_comments":          "Ancora nessuna risposta.",
		"comments_pages":       "Pagine di risposte",
		"comments_prev":        "Risposte precedenti",
		"comments_next":        "Risposte successive",
		"edited":               "modificato",
		"in_reply_to":          "in risposta a %s",
		"see_original":         "Vedi l’originale",
		"reply_title":          "Rispondi dal tuo server",
		"reply_hint":           "Le risposte si scrivono nel fediverso e si vedono qui. Copia l’indirizzo di questo articolo, incollalo nella ricerca della tua app Mastodon, GoToSocial, Misskey o altra, e rispondi al post trovato. Le risposte pubbliche compaiono in questa pagina.",
		"reply_address":        "Indirizzo di questo articolo",
		"reply_how":            "Come rispondere",
		"skip":                 "Vai al contenuto",
		"home":                 "Home",
		"tags":                 "Tag",
		"feeds":                "Feed",
		"nav":                  "Sito",
		"avatar_alt":           "Avatar di %s",
		"follow_title":         "Segui dalla tua istanza",
		"follow_hint":          "Cerca questo indirizzo nella tua app Mastodon, GoToSocial, Misskey o in un’altra app del fediverso, poi seguilo. Ogni articolo arriverà nella tua timeline.",
		"follow_handle":        "Indirizzo nel fediverso",
		"articles":             "Articoli",
		"no_articles":          "Ancora nessun articolo.",
		"published":            "Pubblicato il",
		"updated":              "Aggiornato il",
		"language":             "Lingua",
		"pagination":           "Pagine",
		"prev":                 "Articoli più recenti",
		"next":                 "Articoli meno recenti",
		"page_of":              "Pagina %d di %d",
		"translations":         "Questo articolo in altre lingue",
		"attribution":          "Crediti",
		"author":               "Autore",
		"licence":              "Licenza",
		"source":               "Pubblicazione originale",
		"date_note":            "Sulla data",
		"content_warning":      "Avviso sul contenuto",
		"tag_title":            "Articoli con il tag «%s»",
		"tags_title":           "Tutti i tag",
		"no_tags":              "Ancora nessun tag.",
		"feed_atom":            "Feed Atom",
		"feed_rss":             "Feed RSS",
		"feeds_by_language":    "Feed per lingua",
		"notfound_title":       "Pagina non trovata",
		"notfound_text":        "Non c’è niente a questo indirizzo. L’articolo potrebbe essere stato spostato, o il link contiene un errore.",
		"gone_title":           "Articolo rimosso",
		"gone_text":            "Questo articolo è stato pubblicato qui ma è stato rimosso.",
		"badrequest_title":     "Richiesta non valida",
		"badrequest_text":      "Questo indirizzo è stato richiesto in un modo che il sito non capisce.",
		"notallowed_title":     "Metodo non consentito",
		"notallowed_text":      "Questo indirizzo non risponde a questo tipo di richiesta.",
		"error_title":          "Qualcosa è andato storto",
		"error_text":           "Il sito non ha potuto rispondere. Riprova tra un momento.",
		"back_home":            "Torna alla home",
		"interact_title":       "Seguire e interagire",
		"interact_text":        "Questo sito è un bot di pubblicazione, non un social network con account: qui non c’è niente a cui accedere. Per seguirlo o rispondere a un articolo, usa il tuo account nel fediverso.",
		"interact_steps":       "Copia l’indirizzo qui sotto, incollalo nella ricerca della tua app del fediverso e scegli Segui. Per rispondere a un articolo, incolla invece l’indirizzo dell’articolo.",
		"interact_object":      "Hai chiesto",
		"visit_label":          "Il tuo indirizzo nel fediverso, o il tuo server",
		"visit_follow":         "Segui dal mio server",
		"visit_hint":           "Oppure scrivi il tuo indirizzo (@tu@tuo.server): il tuo server apre questo post, pronto per rispondere, mettere mi piace o condividere.",
		"visit_reply":          "Rispondi",
		"visit_like":           "Mi piace",
		"visit_boost":          "Condividi",
		"visit_title":          "Vai al tuo server",
		"visit_copy":           "Puoi anche copiare questo indirizzo e incollarlo nella ricerca della tua app del fediverso:",
		"visit_err_empty":      "Scrivi il tuo indirizzo nel fediverso, come @tu@tuo.server, o solo il nome del tuo server.",
		"visit_err_path":       "Scrivi l’indirizzo nella forma @nome@server, senza https:// né percorso dopo il nome del server.",
		"visit_err_port":       "Un indirizzo del fediverso non ha numero di porta: scrivilo nella forma @nome@server.",
		"visit_err_ip":         "Scrivi il nome del tuo server, non un indirizzo IP.",
		"visit_err_private":    "Questo server è un indirizzo locale o privato: crieur visita solo server pubblici del fediverso.",
		"visit_err_lookalike":  "Il nome di questo server mescola lettere di alfabeti diversi che si somigliano: crieur non visita nomi simili. Controlla l’indirizzo scritto.",
		"visit_err_script":     "Questo non è un indirizzo del fediverso. Scrivilo nella forma @nome@server.",
		"visit_err_bad":        "Non sembra un indirizzo del fediverso. Scrivilo nella forma @nome@server.",
		"visit_err_blocked":    "Questo sito non interagisce con quel server.",
		"visit_err_dead":       "Il tuo server non ha risposto, o non conosce questo indirizzo. Controllalo, o riprova più tardi.",
		"visit_err_nopage":     "Il tuo server non ha una pagina web per questo: cerca invece l’indirizzo qui sotto nella tua app del fediverso.",
		"visit_err_needhandle": "crieur non sa quale pagina di questo server aprire: scrivi il tuo indirizzo completo, come @tu@tuo.server.",
		"visit_err_badpage":    "Il tuo server ha risposto con una pagina che non è su quel server: crieur non ti ci manda.",
		"visit_err_busy":       "Troppi visitatori vengono mandati ai loro server in questo momento: riprova tra un attimo.",
		"visit_err_self":       "È l’indirizzo di questo sito: scrivi l’indirizzo del tuo account sul tuo server.",
		"powered_by":           "Pubblicato con %s",
	},
}

// monthNames are used to write dates the way readers of each language do.
var monthNames = map[string][12]string{
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	"fr": {"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"},
	"it": {"gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre"},
}

// chromeLang picks the message table for a page language ("fr-CA" → "fr").
func chromeLang(lang string) string {
	base, _, _ := strings.Cut(strings.ToLower(lang), "-")
	if _, ok := messages[base]; ok {
		return base
	}
	return "en"
}

// message looks a chrome text up; a missing key shows as itself so a gap
// is visible in review rather than silently empty.
func message(lang, key string) string {
	if m, ok := messages[chromeLang(lang)][key]; ok {
		return m
	}
	if m, ok := messages["en"][key]; ok {
		return m
	}
	return key
}

// formatDate writes a calendar date in the page language ("28 décembre
// 2023"); languages without a month table get ISO 8601, which every reader
// can read.
func formatDate(t time.Time, lang string) string {
	base, _, _ := strings.Cut(strings.ToLower(lang), "-")
	names, ok := monthNames[base]
	if !ok {
		return t.Format("2006-01-02")
	}
	day := strconv.Itoa(t.Day())
	if t.Day() == 1 {
		switch base {
		case "fr":
			day = "1er"
		case "it":
			day = "1º"
		}
	}
	return day + " " + names[t.Month()-1] + " " + strconv.Itoa(t.Year())
}

// languageName is the name of a language in that language ("fr" →
// "français"), so a reader finds their own language in a list; unknown
// codes show as the code.
func languageName(code string) string {
	tag, err := language.Parse(code)
	if err != nil {
		return code
	}
	if name := display.Self.Name(tag); name != "" {
		return name
	}
	return code
}
