"""Words of web junk, per language, written for the demo generator.

Real junk is not made of good prose: keyword spam is shop and casino vocabulary, short pages are
error messages and buttons, repeated lines are page furniture. Keeping this vocabulary apart from
the sample sentences also keeps it apart from the perplexity models trained on them, as on the
real web, where junk is not in the reference corpus of the language model.
"""

# Search-engine bait: strung together in random order, without the function words of prose.
SPAM_KEYWORDS = {
    "en": [
        "cheap flights", "best price", "buy now", "free shipping", "discount code", "casino bonus",
        "free spins", "weight loss pills", "payday loans", "replica watches", "online pharmacy",
        "crypto profit", "work from home", "hot deals", "limited offer", "coupon", "outlet sale",
        "luxury handbags", "cheap hotels", "bitcoin trading", "slots jackpot", "vpn deal",
        "best seo service", "followers cheap",
    ],
    "fi": [
        "halvat lennot", "paras hinta", "osta heti", "ilmainen toimitus", "alennuskoodi", "kasinobonus",
        "ilmaiskierrokset", "laihdutuspillerit", "pikavippi heti", "kellot halvalla", "verkkoapteekki",
        "kryptovoitto", "kotityö netissä", "kuumat tarjoukset", "rajoitettu tarjous", "kuponki",
        "outlet ale", "merkkilaukut", "halpa hotelli", "bitcoin kaupankäynti", "jättipotti",
        "vpn tarjous", "hakukoneoptimointi halvalla", "seuraajat halvalla",
    ],
    "hi": [
        "सस्ती उड़ानें", "सबसे कम दाम", "अभी खरीदें", "मुफ्त डिलीवरी", "डिस्काउंट कोड", "कैसीनो बोनस",
        "फ्री स्पिन", "वजन घटाने की गोली", "तुरंत लोन", "सस्ती घड़ियां", "ऑनलाइन दवा",
        "क्रिप्टो मुनाफा", "घर बैठे कमाई", "धमाकेदार ऑफर", "सीमित ऑफर", "कूपन", "सेल सेल सेल",
        "ब्रांडेड बैग", "सस्ते होटल", "बिटकॉइन ट्रेडिंग", "जैकपॉट", "वीपीएन डील",
        "एसईओ सेवा", "फॉलोअर्स खरीदें",
    ],
    "ja": [
        "格安航空券", "最安値", "今すぐ購入", "送料無料", "割引クーポン", "カジノボーナス",
        "フリースピン", "ダイエットサプリ", "即日融資", "激安時計", "通販薬局", "仮想通貨で稼ぐ",
        "在宅ワーク", "セール", "期間限定", "ポイント還元", "アウトレット", "ブランドバッグ激安",
        "格安ホテル", "ビットコイン取引", "ジャックポット", "VPN特価", "SEO対策", "フォロワー購入",
    ],
    "vi": [
        "vé máy bay giá rẻ", "giá tốt nhất", "mua ngay", "miễn phí vận chuyển", "mã giảm giá",
        "thưởng casino", "quay miễn phí", "thuốc giảm cân", "vay tiền nhanh", "đồng hồ giá rẻ",
        "nhà thuốc online", "lợi nhuận crypto", "kiếm tiền tại nhà", "khuyến mãi sốc", "ưu đãi có hạn",
        "phiếu giảm giá", "xả hàng", "túi xách hàng hiệu", "khách sạn giá rẻ", "giao dịch bitcoin",
        "nổ hũ", "vpn giá rẻ", "dịch vụ seo", "mua follow",
    ],
}

# Page furniture: a page that is only one of these is too short; one repeated is a template.
PAGE_FRAGMENTS = {
    "en": [
        "Page not found.", "Add to cart", "Read more »", "Loading…", "Access denied.", "Click here to continue",
        "Subscribe to our newsletter!", "Sold out", "Error 404", "Please enable JavaScript.",
        "Accept all cookies", "Session expired. Log in again.", "Out of stock", "Free shipping on all orders!",
    ],
    "fi": [
        "Sivua ei löytynyt.", "Lisää ostoskoriin", "Lue lisää »", "Ladataan…", "Pääsy estetty.", "Jatka klikkaamalla",
        "Tilaa uutiskirjeemme!", "Loppuunmyyty", "Virhe 404", "Ota JavaScript käyttöön.",
        "Hyväksy kaikki evästeet", "Istunto vanheni. Kirjaudu uudelleen.", "Ei varastossa", "Ilmainen toimitus!",
    ],
    "hi": [
        "पेज नहीं मिला।", "कार्ट में डालें", "और पढ़ें »", "लोड हो रहा है…", "प्रवेश वर्जित।", "जारी रखने के लिए क्लिक करें",
        "हमारे न्यूज़लेटर की सदस्यता लें!", "स्टॉक खत्म", "त्रुटि 404", "कृपया जावास्क्रिप्ट चालू करें।",
        "सभी कुकीज़ स्वीकार करें", "सत्र समाप्त। फिर से लॉग इन करें।", "उपलब्ध नहीं", "सभी ऑर्डर पर मुफ्त डिलीवरी!",
    ],
    "ja": [
        "ページが見つかりません。", "カートに入れる", "続きを読む »", "読み込み中…", "アクセスが拒否されました。",
        "こちらをクリック", "メルマガ登録はこちら！", "売り切れ", "エラー404", "JavaScriptを有効にしてください。",
        "すべてのクッキーを許可", "セッション切れです。再ログインしてください。", "在庫なし", "全品送料無料！",
    ],
    "vi": [
        "Không tìm thấy trang.", "Thêm vào giỏ hàng", "Xem thêm »", "Đang tải…", "Truy cập bị từ chối.", "Bấm vào đây để tiếp tục",
        "Đăng ký nhận bản tin!", "Hết hàng", "Lỗi 404", "Vui lòng bật JavaScript.",
        "Chấp nhận tất cả cookie", "Phiên đã hết hạn. Đăng nhập lại.", "Tạm hết hàng", "Miễn phí vận chuyển mọi đơn!",
    ],
}

# Navigation and footer links: a page of only these is boilerplate.
NAVIGATION = {
    "en": [
        "Home", "About us", "Contact", "Privacy policy", "Terms of use", "Log in", "Sign up", "Newsletter",
        "Cookie settings", "Share on Facebook", "Share on X", "Next page", "Previous page", "Sitemap",
        "Careers", "Press", "Help centre", "Accessibility", "© 2024 Example Media Ltd. All rights reserved.",
    ],
    "fi": [
        "Etusivu", "Tietoa meistä", "Yhteystiedot", "Tietosuojaseloste", "Käyttöehdot", "Kirjaudu", "Rekisteröidy",
        "Uutiskirje", "Evästeasetukset", "Jaa Facebookissa", "Jaa X:ssä", "Seuraava sivu", "Edellinen sivu",
        "Sivukartta", "Avoimet työpaikat", "Medialle", "Asiakaspalvelu", "Saavutettavuus",
        "© 2024 Example Media Oy. Kaikki oikeudet pidätetään.",
    ],
    "hi": [
        "होम", "हमारे बारे में", "संपर्क करें", "गोपनीयता नीति", "उपयोग की शर्तें", "लॉग इन", "साइन अप", "न्यूज़लेटर",
        "कुकी सेटिंग्स", "फेसबुक पर शेयर करें", "एक्स पर शेयर करें", "अगला पेज", "पिछला पेज", "साइटमैप",
        "करियर", "प्रेस", "सहायता केंद्र", "सुलभता", "© 2024 एक्ज़ाम्पल मीडिया। सर्वाधिकार सुरक्षित।",
    ],
    "ja": [
        "ホーム", "会社概要", "お問い合わせ", "プライバシーポリシー", "利用規約", "ログイン", "新規登録", "メルマガ",
        "クッキー設定", "Facebookでシェア", "Xでポスト", "次のページ", "前のページ", "サイトマップ",
        "採用情報", "プレスリリース", "ヘルプセンター", "アクセシビリティ", "© 2024 株式会社エグザンプル All Rights Reserved.",
    ],
    "vi": [
        "Trang chủ", "Giới thiệu", "Liên hệ", "Chính sách bảo mật", "Điều khoản sử dụng", "Đăng nhập", "Đăng ký",
        "Bản tin", "Cài đặt cookie", "Chia sẻ lên Facebook", "Chia sẻ lên X", "Trang sau", "Trang trước",
        "Sơ đồ trang", "Tuyển dụng", "Báo chí", "Trung tâm trợ giúp", "Hỗ trợ tiếp cận",
        "© 2024 Công ty Example Media. Bảo lưu mọi quyền.",
    ],
}
